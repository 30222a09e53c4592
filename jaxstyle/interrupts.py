"""Ctrl-C and SIGTERM, handled alike: every long run saves what it has and stops.

TPU VMs, Kubernetes and batch schedulers send SIGTERM (then, a grace period later, SIGKILL)
before they stop a job; Python's default for SIGTERM is to die on the spot, losing the
checkpoint a Ctrl-C would have written. Here both signals either raise `Stopped` (a
KeyboardInterrupt, so every `except KeyboardInterrupt` treats them the same) or, between
steps, set a flag. The exceptions the engines raise carry the signal's number, so the
command can say which signal stopped it and exit 128 + that number (130, 143), as a shell
does for a process killed by it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A KeyboardInterrupt that says which signal raised it (None: not known)."""

    def __init__(self, signum: Optional[int] = None):
        super().__init__(by_signal(signum).strip())
        self.signum = signum


def signum_of(exc: BaseException) -> Optional[int]:
    """The signal behind a KeyboardInterrupt; None for one raised by code, not a signal."""
    return getattr(exc, "signum", None)


def by_signal(signum: Optional[int]) -> str:
    """' by SIGTERM' for the messages that say a run was interrupted; '' if unknown."""
    return f" by {signal.Signals(signum).name}" if signum is not None else ""


def exit_code(signum: Optional[int]) -> int:
    """128 + the signal, as shells report it: 130 for Ctrl-C (also when unknown), 143 for
    SIGTERM."""
    return 128 + (signal.SIGINT if signum is None else signum)


@contextlib.contextmanager
def _handling(handler):
    # Only the main thread can install signal handlers (and only it receives signals); on
    # another thread this does nothing and the signals behave as the process has them.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _raise(signum, frame):
    raise Stopped(signum)


def stop_signals_raise():
    """Within it, SIGTERM raises as Ctrl-C does (`Stopped`, a KeyboardInterrupt), for code
    that relies on KeyboardInterrupt to stop; the previous handlers come back on exit."""
    return _handling(_raise)


class InterruptBetweenSteps:
    """Ctrl-C or SIGTERM takes effect between two steps, never in the middle of one.

    A plain KeyboardInterrupt can land inside JAX's or XLA's own code (a finaliser, a callback)
    where it is swallowed, and the run would go on; in a training loop it could also lose the
    donated state, the old one and the new one. Here the first signal only sets `signum`, a
    flag the loop checks after each step (`check` raises `Stopped`); a second one raises at
    once, so a stuck run can still be stopped. The previous handlers come back on exit.
    """

    def __init__(self):
        self.signum: Optional[int] = None
        self._context = _handling(self._handle)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.requested:
            raise Stopped(signum)
        self.signum = signum

    def __enter__(self):
        self._context.__enter__()
        return self

    def __exit__(self, *exc):
        self._context.__exit__(None, None, None)
        return False

    def check(self) -> None:
        if self.requested:
            raise Stopped(self.signum)


__all__ = ["STOP_SIGNALS", "InterruptBetweenSteps", "Stopped", "by_signal", "exit_code",
           "signum_of", "stop_signals_raise"]
