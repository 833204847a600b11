"""Ctrl-C and SIGTERM for the tuner and training runs: raised as exceptions in the main
thread, never lost, and held back while a trial is being created or closed or a training
chunk is being recorded.

Python drops an exception raised by a signal handler while a garbage-collector callback or a
finalizer runs ("Exception ignored in ..."); JAX registers such a callback, so a plain
KeyboardInterrupt is sometimes swallowed and the run goes on. The handlers here also remember
the signal, and the tuner calls `raise_pending` at its check points (every report) to raise it
again; the swallowed exception's traceback is not printed.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []  # signals received whose exception has not been acted on yet


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (finished trials kept, outputs written)."""


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, _frame) -> None:
    _pending.append(signum)
    raise _exception(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(handler):
    """Within the block, `handler` handles SIGINT and SIGTERM; the previous ones come back."""
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def raising():
    """Within the block, SIGINT raises KeyboardInterrupt and SIGTERM `Terminated`."""
    if not _in_main_thread():  # signal handlers belong to the main thread
        yield
        return
    previous_hook = sys.unraisablehook

    def quiet_about_interrupts(unraisable) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_about_interrupts
    _pending.clear()
    try:
        with _handlers(_on_signal):
            yield
    finally:
        sys.unraisablehook = previous_hook
        _pending.clear()


def raise_pending() -> None:
    """Raise the interrupt of a signal whose first exception was swallowed, if any."""
    if _pending:
        signum = _pending[0]
        _pending.clear()
        raise _exception(signum)


def acknowledge() -> None:
    """The interrupt reached its handler: forget the signals received so far."""
    _pending.clear()


@contextlib.contextmanager
def deferred():
    """Hold SIGINT and SIGTERM back until the block is done, then deliver them (main thread).

    Python-level handlers, not a signal mask: JAX's threads would otherwise take the signal
    and Python would still raise in the main thread mid-block."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    try:
        with _handlers(lambda signum, _frame: received.append(signum)):
            yield
    finally:
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)
