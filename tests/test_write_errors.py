"""Failed writes, unsafe checkpoints and the run-folder lock.

A full disk (or a read-only folder) is simulated in a real ``ganzoo`` subprocess by a
``sitecustomize`` on its PYTHONPATH: writes to files whose name holds a given text fail with
ENOSPC after half the data reached the file, and files under a given folder cannot be opened
for writing (EROFS). Both work without root; a real ENOSPC comes from ``/dev/full``.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import pickle
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import GANZOO, REPO, run_cli
from test_train import QUICK, assert_same, sets, weights

import ganzoo
from ganzoo.checkpoint import load_checkpoint
from ganzoo.errors import CheckpointError, FolderInUseError, WriteError
from ganzoo.metrics.frechet import save_statistics
from ganzoo.runs import RunFolder
from ganzoo.writes import AppendedLines

INJECT = '''
"""Test-only: make some writes of this process fail (see tests/test_write_errors.py)."""
import builtins
import io
import errno
import io
import os

FULL = os.environ.get("GANZOO_TEST_FULL_DISK")  # a file name holding this: ENOSPC on write
READ_ONLY = os.environ.get("GANZOO_TEST_READ_ONLY")  # files under this folder: EROFS on open
real_open = builtins.open


class FullDisk:
    def __init__(self, file):
        self.file = file

    def write(self, data):
        self.file.write(bytes(data)[: len(data) // 2])  # part of it reaches the disk
        self.file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()


def failing_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+") and isinstance(file, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(file))
        if READ_ONLY and path.startswith(READ_ONLY + os.sep):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(file))
        if FULL and FULL in os.path.basename(path):
            return FullDisk(real_open(file, mode, *args, **kwargs))
    return real_open(file, mode, *args, **kwargs)


builtins.open = io.open = failing_open
'''

STEPS_60 = [*QUICK, "train.steps=60"]


def failing(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a subprocess whose writes fail as ``settings`` say."""
    site = tmp_path / "inject"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(INJECT)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, **settings}


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- a full disk during a run ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "name"), [("checkpoints", "step_00000040.pt"), ("samples", "step_00000040.png")]
)
def test_a_full_disk_stops_the_run_keeps_the_last_checkpoint_and_resume_is_identical(
    tmp_path, folder, name
):
    out = tmp_path / "run"
    checkpoints = out / "checkpoints"
    env = failing(tmp_path, GANZOO_TEST_FULL_DISK=name)
    done = run_cli(
        "run", "quickstart", "--out", str(out), "--progress", "none", *sets(*STEPS_60), env=env
    )
    assert done.returncode == 1, done.stderr
    assert last_line(done.stderr) == (
        f"error: cannot write {out / folder / name}: no space left on device; "
        f"kept: {checkpoints / 'step_00000020.pt'} (step 20); "
        f"continue with: ganzoo run --resume {out}"
    )
    assert "Traceback" not in done.stderr
    # no partial file under any name, and last.pt still the step-20 checkpoint
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.pt", "step_00000020.pt"]
    assert (checkpoints / "last.pt").samefile(checkpoints / "step_00000020.pt")
    assert load_checkpoint(checkpoints / "last.pt")["step"] == 20
    assert not list(out.rglob(".*.tmp-*"))
    assert not (out / ".lock").exists()

    resumed = run_cli("run", "--resume", str(out), "--progress", "none")
    assert resumed.returncode == 0, resumed.stderr
    reference = ganzoo.run(
        "quickstart", overrides=STEPS_60, out=tmp_path / "reference", progress="none"
    )
    assert_same(weights(reference.checkpoint), weights(checkpoints / "last.pt"))
    assert [r["step"] for r in RunFolder(out).records()] == [10, 20, 30, 40, 50, 60]


def test_a_full_disk_at_the_start_of_a_run_names_the_file(tmp_path):
    out = tmp_path / "run"
    env = failing(tmp_path, GANZOO_TEST_FULL_DISK="resolved.toml")
    done = run_cli("run", "quickstart", "--out", str(out), *sets(*QUICK), env=env)
    assert done.returncode == 1
    assert last_line(done.stderr) == (
        f"error: cannot write {out / 'resolved.toml'}: no space left on device"
    )
    assert "Traceback" not in done.stderr
    assert not (out / "resolved.toml").exists() and not list(out.glob(".*.tmp-*"))


def test_a_log_on_a_full_device_says_so():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    log = AppendedLines(Path("/dev/full"))
    with pytest.raises(WriteError) as error:
        log.write('{"step": 10}\n')
    assert str(error.value) == "cannot write /dev/full: no space left on device"


def test_a_failed_write_leaves_the_earlier_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "stats.npz"
    save_statistics(path, np.zeros(2), np.eye(2), {"extractor": "first"})
    before = path.read_bytes()
    real_open = builtins.open

    def over_quota(file, mode="r", *args, **kwargs):
        if "w" in mode:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", over_quota)
    with pytest.raises(WriteError) as error:
        save_statistics(path, np.ones(2), np.eye(2), {"extractor": "second"})
    monkeypatch.undo()
    assert str(error.value) == f"cannot write {path}: disk quota exceeded"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.npz"]


# --- ganzoo sample into a place that cannot be written ---------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "run"
    ganzoo.run("quickstart", overrides=QUICK, out=out, progress="none")
    return out


def test_sample_into_a_read_only_file_system_gives_one_message(tmp_path, small_run):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    env = failing(tmp_path, GANZOO_TEST_READ_ONLY=str(read_only))
    done = run_cli("sample", str(small_run), "--out", str(read_only / "s.png"), env=env)
    assert done.returncode == 1
    assert (
        done.stderr.strip() == f"error: cannot write {read_only / 's.png'}: read-only file system"
    )
    assert done.stdout == ""
    assert list(read_only.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into folders without write permission")
def test_sample_into_a_folder_without_write_permission_gives_one_message(tmp_path, small_run):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = run_cli("sample", str(small_run), "--out", str(locked / "s.png"))
    finally:
        locked.chmod(0o755)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: cannot write {locked / 's.png'}: permission denied"


# --- checkpoints that would run code when loaded ---------------------------------------------

REFUSED = "refused to load {}: it contains executable Python objects; ganzoo checkpoints never do"


class WritesAFile:
    """Unpickling this writes ``target``: by Path.write_text, or by a shell command."""

    def __init__(self, target: Path, how: str) -> None:
        self.target, self.how = target, how

    def __reduce__(self):
        if self.how == "write_text":
            return Path.write_text, (Path(self.target), "written by loading a checkpoint")
        return os.system, (f"touch {shlex.quote(str(self.target))}",)


def craft(path: Path, target: Path, how: str, container: str) -> None:
    """A checkpoint-looking file that writes ``target`` when unpickled."""
    state = {"format": 1, "step": 60, "generator": WritesAFile(target, how)}
    if container == "torch.save":
        torch.save(state, path)
    else:  # a bare pickle of a newer protocol, as a hand-made file would be
        with path.open("wb") as f:
            pickle.dump(state, f, protocol=4)


@pytest.mark.parametrize("how", ["write_text", "os.system"])
@pytest.mark.parametrize("container", ["torch.save", "pickle"])
def test_a_checkpoint_that_writes_a_file_when_loaded_is_refused_unread(tmp_path, how, container):
    decoy, decoy_target = tmp_path / "decoy.pt", tmp_path / "decoy-written"
    craft(decoy, decoy_target, how, container)
    with decoy.open("rb") as f:  # the file is really dangerous: an unsafe load writes
        torch.load(f, weights_only=False) if container == "torch.save" else pickle.load(f)
    assert decoy_target.exists()

    path, target = tmp_path / "step_00000060.pt", tmp_path / "written"
    craft(path, target, how, container)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(error.value) == REFUSED.format(path)
    assert not target.exists()


def test_run_resume_and_sample_refuse_an_unsafe_checkpoint(tmp_path, small_run):
    run = tmp_path / "run"
    run.mkdir()
    for item in small_run.iterdir():
        if item.is_dir():
            (run / item.name).mkdir()
            for f in item.iterdir():
                (run / item.name / f.name).write_bytes(f.read_bytes())
        else:
            (run / item.name).write_bytes(item.read_bytes())
    unsafe, target = run / "checkpoints" / "step_00000060.pt", tmp_path / "written"
    craft(unsafe, target, "os.system", "torch.save")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for command in (["run", "--resume", str(run)], ["sample", str(run)]):
        done = run_cli(*command)
        assert done.returncode == 1, command
        assert done.stderr.strip() == "error: " + REFUSED.format(unsafe), command
        assert "weights_only" not in done.stderr
    assert not target.exists()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_damaged_checkpoint_keeps_its_own_message(tmp_path, small_run):
    good = (small_run / "checkpoints" / "step_00000040.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good[: len(good) // 2])
    damaged = tmp_path / "damaged.pt"  # a whole archive (checksums right) holding a bad pickle
    with (
        zipfile.ZipFile(small_run / "checkpoints" / "step_00000040.pt") as source,
        zipfile.ZipFile(damaged, "w") as archive,
    ):
        for name in source.namelist():
            data = source.read(name)
            archive.writestr(name, b"\x80\x02garbage" if name.endswith("data.pkl") else data)
    unsafe_cut = tmp_path / "unsafe-cut.pt"  # an unsafe file cut short is a cut file
    craft(tmp_path / "unsafe.pt", tmp_path / "written", "os.system", "pickle")
    unsafe_cut.write_bytes((tmp_path / "unsafe.pt").read_bytes()[:-10])
    messages = {}
    for path in (cut, damaged, unsafe_cut):
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path)
        messages[path.name] = str(error.value)
    assert messages["cut.pt"].startswith(f"{cut}: truncated or corrupt checkpoint (")
    assert messages["damaged.pt"] == (
        f"{damaged}: truncated or corrupt checkpoint (UnpicklingError: Unsupported operand 103)."
    )
    assert messages["unsafe-cut.pt"].startswith(f"{unsafe_cut}: truncated or corrupt checkpoint")
    assert not any("weights_only" in m for m in messages.values())
    assert not (tmp_path / "written").exists()


# --- the run-folder lock -------------------------------------------------------------------


def test_a_held_run_folder_is_refused_with_the_holder_named(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with folder.lock(new=True):
        assert (folder.root / ".lock").is_file()
        with pytest.raises(FolderInUseError) as error:
            folder.lock()
        message = str(error.value)
        assert message.startswith(
            f"{folder.root} is in use by another ganzoo run "
            f"(pid {os.getpid()} on {socket.gethostname()}, since "
        )
        assert message.endswith(
            f"); wait for it to end or stop it (kill -INT {os.getpid()} saves a checkpoint), "
            f"then continue with: ganzoo run --resume {folder.root}"
        )
    assert not (folder.root / ".lock").exists()
    with folder.lock():  # free again
        pass


def test_a_forked_child_does_not_keep_a_dead_runs_lock(tmp_path):
    root = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, sys, time
        from ganzoo.runs import RunFolder
        lock = RunFolder({str(root)!r}).lock(new=True)
        child = os.fork()  # as a DataLoader worker is
        if child == 0:
            time.sleep(120)
            os._exit(0)
        print(child, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        with pytest.raises(FolderInUseError):
            RunFolder(root).lock()
        parent.kill()
        parent.wait(timeout=30)
        os.kill(child, 0)  # the child lives on...
        with RunFolder(root).lock():  # ...and the folder is free
            pass
    finally:
        parent.kill()
        os.kill(child, signal.SIGKILL)


def test_a_second_run_into_a_running_folder_is_refused_and_a_killed_ones_resumes(
    tmp_path, slow_plugin
):
    out = tmp_path / "run"
    overrides = [*QUICK, "loss.name=slow-ns", "train.steps=100000"]
    first = subprocess.Popen(
        [GANZOO, "run", "quickstart", "--out", str(out), "--progress", "none", *sets(*overrides)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step_00000020.pt").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = run_cli("run", "--resume", str(out), "--progress", "none")
        assert first.poll() is None  # still running when the second one was refused
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    assert second.returncode == 1
    assert second.stderr.startswith(
        f"error: {out} is in use by another ganzoo run "
        f"(pid {first.pid} on {socket.gethostname()}, since "
    )
    assert "Traceback" not in second.stderr

    assert (out / ".lock").exists()  # left behind by the killed run: it stops nobody
    newest = load_checkpoint(sorted((out / "checkpoints").glob("step_*.pt"))[-1])["step"]
    resumed = run_cli(
        "run", "--resume", str(out), "--progress", "none", *sets(f"train.steps={newest + 20}")
    )
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == newest + 20
    assert not (out / ".lock").exists()


def test_the_inception_weights_download_writes_through_the_same_path(tmp_path, monkeypatch):
    import hashlib
    import re

    from ganzoo.metrics import inception

    source = tmp_path / "published.pth"
    source.write_bytes(b"inception weights " * 5000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", digest[:16])
    target = tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_FILE
    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):
        if "w" in mode and inception.WEIGHTS_FILE in os.fspath(file):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    expected = f"cannot write the Inception weights {target}: no space left on device"
    with pytest.raises(WriteError, match=re.escape(expected)):
        inception._download(source.as_uri(), target)
    assert list(target.parent.iterdir()) == []  # no partial file under any name

    monkeypatch.setattr(builtins, "open", real_open)
    inception._download(source.as_uri(), target)
    assert target.read_bytes() == source.read_bytes()
    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", "0" * 16)
    with pytest.raises(ValueError, match="SHA-256"):
        inception._download(source.as_uri(), tmp_path / "other.pth")
    assert not (tmp_path / "other.pth").exists()


def test_a_failed_tensorboard_write_is_one_error_in_the_training_thread(tmp_path, monkeypatch):
    import threading

    from torch.utils.tensorboard import SummaryWriter

    from ganzoo.writes import Guarded, quiet_writer_threads

    real_open = io.open

    def full_disk(file, mode="r", *args, **kwargs):
        if "tfevents" in os.fsdecode(file) and any(c in mode for c in "wa"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(file, mode, *args, **kwargs)

    printed: list[threading.ExceptHookArgs] = []  # what Python would print as tracebacks
    monkeypatch.setattr(threading, "excepthook", printed.append)
    folder = tmp_path / "tensorboard"
    with quiet_writer_threads():
        writer = Guarded(SummaryWriter(log_dir=str(folder)), folder)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(io, "open", full_disk)
            with pytest.raises(WriteError, match=f"cannot write {folder}: no space left"):
                for step in range(10_000):  # the thread fails at its first write; then we hear
                    writer.add_scalar("loss", 1.0, step)
                    writer.flush()
        assert printed == []
        other = threading.Thread(target=lambda: 1 / 0)  # other threads' errors still print
        other.start()
        other.join()
    assert [type(args.exc_value) for args in printed] == [ZeroDivisionError]


def test_a_default_run_folder_taken_meanwhile_gives_way_to_the_next_name(tmp_path, monkeypatch):
    from ganzoo.writes import WriterLock

    monkeypatch.chdir(tmp_path)
    real_new = RunFolder.new.__func__
    held: list[WriterLock] = []

    def racing_new(cls, name, out=None):
        folder = real_new(cls, name, out)
        if not held:  # another run takes this name between the choice and the lock
            folder.root.mkdir(parents=True)
            lock = WriterLock.try_acquire(folder.lock_file)
            assert lock is not None
            held.append(lock)
            racing_new.taken = folder.root
        return folder

    monkeypatch.setattr(RunFolder, "new", classmethod(racing_new))
    try:
        result = ganzoo.run("quickstart", overrides=["train.steps=20"], progress="none")
    finally:
        held[0].release()
    assert result.run_dir != racing_new.taken
    assert result.run_dir.parent == racing_new.taken.parent
    assert (result.run_dir / "checkpoints" / "last.pt").is_file()
    assert list(racing_new.taken.iterdir()) == []  # the other run's folder was not touched
