"""SIGTERM/SIGINT handling that cannot deadlock.

A Python signal handler runs in the main thread between two bytecodes, possibly while
that thread holds a lock (the worker's own, or one inside ``threading.Event``).  A handler
that takes the same lock hangs the process on shutdown, exactly when it matters.  So the
handler here takes no lock at all: the C-level handler writes the signal number to a
wake-up pipe (``signal.set_wakeup_fd``) and a watcher thread does the real work.  The
Python handler only counts, and from the second signal on raises ``ImmediateExit`` in the
main thread to break it out of a blocking call (a long-poll), as ``KeyboardInterrupt``
would.  After the second signal the previous handlers are back, so a third one kills.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ImmediateExit(BaseException):
    """Raised in the main thread by a second signal.  A ``BaseException`` so that no
    ``except Exception`` on the way swallows it."""


class SignalBridge:
    """Install with ``install()`` (main thread only), undo with ``uninstall()``.

    ``on_signal(signal, count)`` runs on the watcher thread for every SIGTERM/SIGINT;
    ``interruptible()`` says whether the main thread may be interrupted right now.
    """

    def __init__(
        self,
        on_signal: Callable[[signal.Signals, int], None],
        interruptible: Callable[[], bool],
    ) -> None:
        self._on_signal = on_signal
        self._interruptible = interruptible
        self._count = 0
        self._previous: dict[int, Any] = {}
        self._old_wakeup_fd = -1
        self._read_fd = -1
        self._write_fd = -1
        self._watcher: threading.Thread | None = None

    def install(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # required by set_wakeup_fd
        self._old_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handler)
        self._watcher = threading.Thread(target=self._watch, name="flowworker-signals", daemon=True)
        self._watcher.start()

    def uninstall(self) -> None:
        if self._watcher is None:
            return
        self._restore_handlers()
        signal.set_wakeup_fd(self._old_wakeup_fd)
        os.close(self._write_fd)  # the watcher reads EOF and ends
        self._watcher.join(timeout=1.0)
        os.close(self._read_fd)
        self._watcher = None

    def _restore_handlers(self) -> None:
        while self._previous:
            signum, handler = self._previous.popitem()
            signal.signal(signum, handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        # Main thread, anywhere: no locks, no logging, no I/O.
        self._count += 1
        if self._count >= 2:
            self._restore_handlers()
            if self._interruptible():
                raise ImmediateExit

    def _watch(self) -> None:
        handled = {int(signum) for signum in HANDLED_SIGNALS}
        count = 0
        while True:
            try:
                data = os.read(self._read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for number in data:
                if number in handled:
                    count += 1
                    self._on_signal(signal.Signals(number), count)
