"""Writing files: every file ganzoo writes goes through here, so that every failure reads alike.

A failed write (a full disk, a quota, a read-only file system, a missing permission) raises
:class:`~ganzoo.errors.WriteError`, naming the path and the error in words:
``cannot write runs/x/checkpoints/step_00000400.pt: no space left on device``. A file is
made whole in memory, written under a temporary name beside its place, synced and renamed
into place, so that a failed write leaves the earlier file (or none) and never part of one.
A :class:`WriterLock` keeps a second process from writing into the same folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import json
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from ganzoo.errors import WriteError

try:
    import fcntl
except ImportError:  # not POSIX: folders are not locked
    fcntl = None  # type: ignore[assignment]

TEMPORARY = ".tmp-"
# Seconds between two tries of a lock that another process holds (WriterLock.wait).
WAIT_POLL = 0.5


def reason(exc: OSError) -> str:
    """A failed write's error in words: ``no space left on device``, ``permission denied``..."""
    if exc.errno is not None:
        words = os.strerror(exc.errno)
        return words[:1].lower() + words[1:]
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def guarded(path: Path, what: str = "", action: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` inside the block into a :class:`WriteError` about ``path``.

    The message reads ``cannot {action} {what} {path}: {reason}``.
    """
    try:
        yield
    except OSError as exc:
        name = f"{what} {path}" if what else str(path)
        raise WriteError(f"cannot {action} {name}: {reason(exc)}") from exc


def temporary(path: Path) -> Path:
    """The name ``path`` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}{TEMPORARY}{os.getpid()}")


def _discard(path: Path) -> None:
    # cleaning up after a failed write must not hide that write's own error
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes | memoryview, what: str = "") -> Path:
    """Write ``data`` as the whole of ``path`` (temporary file, fsync, rename); return it."""
    tmp = temporary(path)
    try:
        with guarded(path, what):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        _discard(tmp)
    return path


def write_text(path: Path, text: str, what: str = "") -> Path:
    """Write ``text`` (UTF-8) as the whole of ``path``, as :func:`write_bytes` does."""
    return write_bytes(path, text.encode("utf-8"), what)


def write_file(path: Path, write: Callable[[BinaryIO], object], what: str = "") -> Path:
    """Write what ``write`` puts into a binary stream (``torch.save``, ``np.savez``...) as ``path``.

    The stream is in memory: a library that writes a file itself reports a full disk in its
    own words (``torch.save``: ``unexpected pos``), where this says what happened.
    """
    buffer = io.BytesIO()
    with guarded(path, what):
        write(buffer)
    return write_bytes(path, buffer.getbuffer(), what)


def write_many(files: Sequence[tuple[Path, bytes]], what: str = "") -> None:
    """Write each ``(path, data)`` as the whole of ``path``, with one flush to disk for all.

    As :func:`write_bytes` does, each file is written under its temporary name and renamed
    into place, so that it is whole or absent; but one ``os.sync`` stands for the ``fsync``
    of each, which costs milliseconds a file: many small files (exported samples) go at the
    speed of the disk. Where ``os.sync`` is missing (Windows), each file is synced.
    """
    sync_all = getattr(os, "sync", None)
    written: list[Path] = []
    try:
        for path, data in files:
            tmp = temporary(path)
            written.append(tmp)
            with guarded(path, what), open(tmp, "wb") as f:
                f.write(data)
                if sync_all is None:
                    f.flush()
                    os.fsync(f.fileno())
        if sync_all is not None:
            sync_all()
        for (path, _), tmp in zip(files, written, strict=True):
            with guarded(path, what):
                os.replace(tmp, path)
    finally:
        for tmp in written:
            _discard(tmp)


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` a hard link to ``source`` (a copy where links fail), atomically."""
    tmp = temporary(target)
    try:
        with guarded(target):
            try:
                os.link(source, tmp)
            except OSError:  # file systems without hard links get a copy
                shutil.copy2(source, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
    finally:
        _discard(tmp)


def make_folder(path: Path, what: str = "") -> Path:
    """Create the folder ``path`` (and its parents) unless it is there; return it."""
    with guarded(path, what):
        path.mkdir(parents=True, exist_ok=True)
    return path


def remove(path: Path) -> None:
    """Delete the file ``path`` if it is there."""
    with guarded(path, action="delete"):
        path.unlink(missing_ok=True)


class AppendedLines:
    """A text file that lines are appended to, each written through at once (a log)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with guarded(path):
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def write(self, text: str) -> None:
        """Append ``text`` and hand it to the operating system."""
        with guarded(self.path):
            self._file.write(text)
            self._file.flush()

    def flush(self) -> None:
        """Hand what is buffered to the operating system."""
        with guarded(self.path):
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with guarded(self.path):
            self._file.close()

    def __enter__(self) -> AppendedLines:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            with contextlib.suppress(OSError):
                self._file.close()


class Guarded:
    """``target``'s methods, called so that an ``OSError`` in any becomes a :class:`WriteError`.

    For writers that keep their own files (TensorBoard's), named by ``path`` in the message.
    """

    def __init__(self, target: Any, path: Path) -> None:
        self._target, self._path = target, path

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            with guarded(self._path):
                return attribute(*args, **kwargs)

        return call


@contextlib.contextmanager
def quiet_writer_threads() -> Iterator[None]:
    """Inside the block, a failed write in TensorBoard's writer thread prints no traceback.

    That thread keeps the error and raises it again at the next call from the training
    thread, where :class:`Guarded` reports it in one line; Python would also print the
    thread's traceback, which this hook leaves out. Other threads' errors print as ever.
    """
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        writer = type(args.thread).__name__ == "_AsyncWriterThread"
        if not (writer and isinstance(args.exc_value, OSError)):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


# Lock file descriptors this process holds. A forked child (a DataLoader worker) closes its
# copies at once: otherwise a worker that outlives its killed parent would keep the lock.
_HELD: set[int] = set()


def _close_held() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held)


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


class WriterLock:
    """An exclusive lock on a lock file, held by one writing process (``fcntl.flock``).

    The kernel releases it when the process ends, however it ends (SIGKILL included), so a
    lock file left behind stops nobody. The file records who holds the lock; it is deleted
    on release. Where ``fcntl`` is missing (Windows), the lock excludes no one.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def try_acquire(cls, path: Path) -> WriterLock | None:
        """Take the lock of ``path`` (creating the file); None while another process holds it.

        Raises:
            WriteError: the lock file cannot be created or written.

        """
        while True:
            with guarded(path):
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # the previous holder deletes the file on release: lock the file that is there
                with contextlib.suppress(FileNotFoundError):
                    if _identity(os.stat(path)) == _identity(os.fstat(fd)):
                        break
            except BlockingIOError:
                os.close(fd)
                return None
            except OSError as exc:
                os.close(fd)
                raise WriteError(f"cannot lock {path}: {reason(exc)}") from exc
            os.close(fd)
        _HELD.add(fd)
        lock = cls(path, fd)
        try:
            lock._record()
        except WriteError:
            lock.release()
            raise
        return lock

    @classmethod
    def wait(
        cls, path: Path, waiting: Callable[[dict[str, Any]], None] | None = None
    ) -> WriterLock:
        """Take the lock of ``path``, waiting while another process holds it.

        ``waiting`` is called once, with the holder (:meth:`holder`), when another process
        holds the lock at the first try.

        Raises:
            WriteError: the lock file cannot be created or written.

        """
        told = False
        while True:
            lock = cls.try_acquire(path)
            if lock is not None:
                return lock
            if not told and waiting is not None:
                waiting(cls.holder(path))
                told = True
            time.sleep(WAIT_POLL)

    def _record(self) -> None:
        """Write who holds the lock into the lock file."""
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now().isoformat(sep=" ", timespec="seconds"),
            "command": command,
        }
        with guarded(self.path):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)

    @staticmethod
    def holder(path: Path) -> dict[str, Any]:
        """Who holds the lock of ``path``, as it recorded itself; empty when unreadable.

        The keys are ``pid``, ``host``, ``since`` and ``command``.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd >= 0

    def release(self) -> None:
        """Give the lock up and delete the lock file; nothing happens if it is not held."""
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):  # deleted while still held, so no one else's file
            self.path.unlink()
        _HELD.discard(self._fd)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
