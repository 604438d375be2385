"""Stopping on a signal: SIGINT and SIGTERM become a request that long work checks between steps.

``ganzoo run`` checkpoints and exits when one arrives; ``ganzoo bench`` passes it on to the runs
it started, waits for them to save, and records how long they ran.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class StopRequest:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop after the current step."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal_name = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle the signals inside the block (in the main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
