"""Shared helpers: run the real ``ganzoo`` CLI in a subprocess and register plugins as pip does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one test process a core (pytest -n auto): each computes on one thread, and so do the
    # ganzoo processes it starts, so that the processes do not fight over the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
GANZOO = str(Path(sys.executable).parent / "ganzoo")


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the tests' caches (classifiers, reference features) out of the user's home.

    One cache folder for the session, for the tests and the CLI subprocesses they start; a
    test that needs an empty cache sets ``GANZOO_CACHE_DIR`` itself. Under pytest-xdist the
    workers share one classifier folder (the session's temporary root), so each classifier
    is trained once a session, not once a worker: the first to need it trains it under the
    cache's lock while the others wait.
    """
    before = os.environ.get("GANZOO_CACHE_DIR")
    cache = tmp_path_factory.mktemp("ganzoo-cache")
    root = tmp_path_factory.getbasetemp()
    shared = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "classifiers"
    shared.mkdir(exist_ok=True)
    (cache / "classifiers").symlink_to(shared)
    os.environ["GANZOO_CACHE_DIR"] = str(cache)
    yield
    if before is None:
        del os.environ["GANZOO_CACHE_DIR"]
    else:
        os.environ["GANZOO_CACHE_DIR"] = before


def own_cache(folder: Path) -> Path:
    """A cache folder with no reference features, sharing the session's trained classifiers.

    Training a dataset classifier takes tens of seconds even on the tests' small data; tests
    that need a feature cache of their own share the classifiers the session trained.
    """
    classifiers = Path(os.environ["GANZOO_CACHE_DIR"]) / "classifiers"
    classifiers.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True)
    (folder / "classifiers").symlink_to(classifiers)
    return folder


def shared_data_dir() -> Path | None:
    """The real data folder (../shared/data or $GANZOO_DATA_DIR), if it is there."""
    path = Path(os.environ.get("GANZOO_DATA_DIR") or REPO.parent / "shared" / "data")
    return path if path.is_dir() else None


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``ganzoo ARGS`` as a subprocess and return its completed process (text mode)."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [GANZOO, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
    )


def stop_at_checkpoint(
    args: list[str], checkpoint: Path, sig: int = signal.SIGKILL, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Start ``ganzoo ARGS``, send ``sig`` as soon as ``checkpoint`` exists; the ended process."""
    process = subprocess.Popen(
        [GANZOO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while not checkpoint.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"no {checkpoint} after {timeout} s"
            time.sleep(0.005)
    except BaseException:
        process.terminate()  # a failed wait leaves nothing running: a bench stops its runs
        try:
            process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        raise
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def write_plugin(
    site: Path,
    dist: str,
    version: str,
    entry_points: dict[str, dict[str, str]],
    modules: dict[str, str] | None = None,
) -> None:
    """Install a plugin the way pip does: ``<dist>-<version>.dist-info`` beside its modules."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    for name, source in (modules or {}).items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A fresh site folder on sys.path and PYTHONPATH; returns a writer of plugins into it."""
    from ganzoo import registry

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    registry.reset()

    def write(dist: str, version: str, entry_points: dict, modules: dict | None = None) -> Path:
        write_plugin(site, dist, version, entry_points, modules)
        registry.reset()
        return site

    yield write
    registry.reset()


@pytest.fixture
def seed_zero() -> None:
    """Seed torch's global generator with 0 for the test."""
    import torch

    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run the module's tests on one thread: small tensors gain nothing from more, and lose
    much when other work shares the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SLOW_LOSS = '''
import math
import time

import torch
import torch.nn.functional as F

from ganzoo.api import LossOutput, Params
from ganzoo.zoo.losses import NonSaturatingLoss


class SlowLoss(NonSaturatingLoss):
    """The non-saturating loss, 10 ms slower per step, so that tests can stop a run mid-way."""

    def generator_loss(self, D, real, fake):
        time.sleep(0.01)
        return super().generator_loss(D, real, fake)


class NaNAfter(NonSaturatingLoss):
    """The non-saturating loss until generator call 25, then NaN."""

    calls = 0

    def generator_loss(self, D, real, fake):
        NaNAfter.calls += 1
        out = super().generator_loss(D, real, fake)
        if NaNAfter.calls >= 25:
            return LossOutput(out.value * math.nan)
        return out
'''


@pytest.fixture
def slow_plugin(plugin_site):
    return plugin_site(
        "ganzoo-testlosses",
        "0.1",
        {"ganzoo.losses": {"slow-ns": "slow_loss:SlowLoss", "nan-after": "slow_loss:NaNAfter"}},
        {"slow_loss": SLOW_LOSS},
    )
