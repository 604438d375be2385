"""Throwaway virtual environments for real ``pip install`` / ``pip uninstall`` of plugins.

The venv sees this environment's site-packages (ganzoo, torch...) through a folder of links,
leaving out the files pip recorded for one distribution, so it starts as this environment
would be without that distribution. pip runs from this environment with ``--python``, offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path


def isolated_python(tmp_path: Path, without: str | None = None) -> Path:
    """Create a venv under ``tmp_path`` that sees this environment except ``without``."""
    site = Path(sysconfig.get_path("purelib"))
    hidden: set[str] = set()
    if without is not None:
        dist = metadata.distribution(without)
        site = Path(dist.locate_file(""))
        hidden = {Path(f).parts[0] for f in dist.files or []}
    view = tmp_path / "site-view"
    view.mkdir()
    for entry in site.iterdir():
        if entry.name not in hidden:
            (view / entry.name).symlink_to(entry)
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = run_in(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    Path(purelib.stdout.strip(), "site_view.pth").write_text(
        f"import site; site.addsitedir({str(view)!r})\n"
    )
    return python


def run_in(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with no PYTHONPATH, user site or disabled plugins leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GANZOO_DISABLE_PLUGINS")}
    env |= {"NO_COLOR": "1", "PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def pip(python: Path, *args: str) -> str:
    """Run pip for the venv of ``python``; return its output, failing the test if pip fails."""
    done = run_in(Path(sys.executable), "-m", "pip", "--python", str(python), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def pip_install_copy(python: Path, source: Path, tmp_path: Path) -> Path:
    """Install a copy of the project in ``source`` (not editable, offline); return the copy."""
    copy = shutil.copytree(
        source,
        tmp_path / source.name,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    pip(python, "install", "--no-deps", "--no-build-isolation", "--no-index", str(copy))
    return Path(copy)


def installed_losses(python: Path) -> dict[str, str]:
    """``ganzoo list losses`` in the venv of ``python``: name -> ``dist version``."""
    done = run_in(python, "-m", "ganzoo", "list", "losses", "--json")
    assert done.returncode == 0, done.stderr
    return {r["name"]: f"{r['dist']} {r['version']}" for r in json.loads(done.stdout)}
