"""Ctrl-C and SIGTERM for the tuner and training runs: raised as exceptions in the main
thread, never lost, and held back while a trial is being created or closed or a training
chunk is being recorded.

Python drops an exception raised by a signal handler while a garbage-collector callback or a
finalizer runs ("Exception ignored in ..."); JAX registers such a callback, so a plain
KeyboardInterrupt is sometimes swallowed and the run goes on. The handlers here also remember
the signal, and the tuner calls `raise_pending` at its check points (every report) to raise it
again; the swallowed exception's traceback is not printed.

Python runs signal handlers in the main thread only, between bytecodes: while the main thread
blocks in a compile or waits for a compiled program, a Ctrl-C waits too. `wait_ready` waits
for a program in short sleeps; `in_background` runs a whole computation (compiles included)
in a thread, so that the main thread acts on the signal at once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

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
    """Raise the interrupt of a signal whose first exception was swallowed, if any (in the
    main thread, whose handler received it; elsewhere nothing)."""
    if _pending and _in_main_thread():
        signum = _pending[0]
        _pending.clear()
        raise _exception(signum)


def exit_code(err: KeyboardInterrupt) -> int:
    """The exit status of a command stopped by `err`: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def in_background(work: Callable[[], T], poll_s: float = 0.05) -> T:
    """work() in a daemon thread while the main thread waits, so that Ctrl-C or SIGTERM raises
    here within `poll_s` even while `work` blocks in a compile or a long compiled program
    (Python runs signal handlers in the main thread between bytecodes: a blocking call there
    holds the signal back until it returns). Returns work's result or raises its exception.
    On an interrupt `work` is left running and the process ends without waiting for it
    (`_exit_past_abandoned_work`), so `work` must only compute and print: the caller writes
    the outputs."""
    if not _in_main_thread():
        return work()
    outcome: dict = {}
    done = threading.Event()  # not Thread.join: interrupted, it marks a running thread ended

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # noqa: BLE001  handed to the main thread as it is
            outcome["error"] = err
        finally:
            done.set()

    threading.Thread(target=target, name="bb_jax-work", daemon=True).start()
    try:
        while not done.wait(poll_s):
            raise_pending()
    except KeyboardInterrupt as err:
        _abandon(lambda: not done.is_set(), err)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def wait_ready(tree, poll_s: float = 0.01):
    """`tree` once every JAX array in it is computed, as `jax.block_until_ready`, but waited
    for in short sleeps, so that Ctrl-C or SIGTERM raises meanwhile (a blocking wait holds
    Python's signal handlers back until a long program ends; the program is left to the
    ending process)."""
    import jax

    arrays = [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array)]

    def running() -> bool:
        return not all(x.is_ready() for x in arrays)

    try:
        while running():
            time.sleep(poll_s)
            raise_pending()
    except KeyboardInterrupt as err:
        _abandon(running, err)
        raise
    return tree


# work left running by an interrupt: (whether it still runs, the interrupt's exit status)
_abandoned: list[tuple[Callable[[], bool], int]] = []


def _abandon(running: Callable[[], bool], err: KeyboardInterrupt) -> None:
    if not _abandoned:
        atexit.register(_exit_past_abandoned_work)
    _abandoned.append((running, exit_code(err)))


def _exit_past_abandoned_work() -> None:
    """At exit, while abandoned work still runs: end the process now with its interrupt's
    status. Finalizing Python under a compiled program or a thread inside XLA can crash the
    process ("terminate called ...", status 134; a segmentation fault, 139)."""
    running = [status for still_running, status in _abandoned if still_running()]
    if running:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(running[0])


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
