"""How a multiprocessing worker delivers before it ends.

A worker ends with ``os._exit`` after running ``multiprocessing``'s own finalizers: atexit
hooks never run there, so each processor in a worker registers a finalizer. ``with Pool() as
pool`` (and ``Pool.terminate``) ends its workers with SIGTERM, whose default action kills the
worker at once: in a worker whose SIGTERM is left at its default, a handler delivers first
(within the processors' export timeout), then lets the signal do what it would have done.
An application's own SIGTERM handler is never replaced.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType

from otel_feedback._log import logger

__all__ = ["deliver_before_exit"]

_exits: weakref.WeakKeyDictionary[object, Callable[[], None]] = weakref.WeakKeyDictionary()
_installed = False
# The handler waits this long at most for the processors (each bounded by its own timeout).
_SIGTERM_WAIT_S = 30.0


def deliver_before_exit(owner: object, at_exit: Callable[[], None]) -> None:
    """In a multiprocessing worker: run ``at_exit`` before the worker ends, however it ends.

    ``owner`` is held weakly; ``at_exit`` must not hold it strongly.
    """
    from multiprocessing import util  # noqa: PLC0415 - loaded in any worker already

    util.Finalize(owner, at_exit, exitpriority=10)
    _exits[owner] = at_exit
    _handle_sigterm()


def _handle_sigterm() -> None:
    global _installed  # noqa: PLW0603 - one handler per process
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the application's own: left alone
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    # On a thread of its own: the signal may have come while the main thread held one of
    # the processors' locks, which the exit hooks take.
    hooks = list(_exits.values())
    worker = threading.Thread(target=_run_all, args=(hooks,), name="otel_feedback.sigterm")
    worker.start()
    worker.join(_SIGTERM_WAIT_S)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _run_all(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # noqa: BLE001 - every processor gets its turn
            logger.warning("Delivering feedback before SIGTERM failed", exc_info=True)
