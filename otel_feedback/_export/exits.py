"""How a processor delivers at the end of its process, however the process ends.

- A normal exit runs atexit hooks: one per processor, even one the application no longer
  references (its engine still holds records), released by ``shutdown()``.
- A ``multiprocessing`` worker ends with ``os._exit`` after running ``multiprocessing``'s
  own finalizers, never the atexit hooks: a processor in a worker registers a finalizer.
- ``with Pool() as pool`` (``Pool.terminate``) ends its workers with SIGTERM, whose default
  action kills at once: in a worker whose SIGTERM is left at its default, a handler delivers
  first (within the processors' export timeout), then lets the signal do what it would have
  done. An application's own SIGTERM handler is never replaced.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType

from otel_feedback._log import logger

__all__ = ["ExitHook"]

_in_worker: list[ExitHook] = []  # the hooks a SIGTERM in a multiprocessing worker runs
_installed = False
_delivering = False  # a hook has started: the process is on its way out
# The SIGTERM handler waits this long at most for the hooks (each bounded by its own timeout).
_SIGTERM_WAIT_S = 30.0


class ExitHook:
    """Runs ``at_exit`` of a processor at the process's end, or ``fallback`` once it is gone.

    The processor is held weakly; ``fallback`` (its engine's shutdown) strongly, until
    :meth:`release`: records it still holds are delivered even if the processor was dropped.
    """

    def __init__(self, at_exit: Callable[[], None], fallback: Callable[[], None]) -> None:
        self._at_exit = weakref.WeakMethod(at_exit)
        self._fallback: Callable[[], None] | None = fallback
        atexit.register(self)

    def __call__(self) -> None:
        global _delivering  # noqa: PLW0603 - the process is ending from here on
        _delivering = True
        at_exit = self._at_exit()
        if at_exit is not None:
            at_exit()
        elif self._fallback is not None:
            self._fallback()

    def in_worker(self) -> None:
        """This process is a multiprocessing worker: run at its end too (os._exit, SIGTERM)."""
        from multiprocessing import util  # noqa: PLC0415 - loaded in any worker already

        util.Finalize(None, self, exitpriority=10)
        _in_worker.append(self)
        _handle_sigterm()

    def release(self) -> None:
        """The processor shut down: nothing left to do at exit."""
        self._fallback = None
        atexit.unregister(self)
        if self in _in_worker:
            _in_worker.remove(self)


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
    # the processors' locks, which the hooks take. A worker already delivering on its way
    # out (Pool sends the end-of-work sentinel and SIGTERM at once) is left to finish: it
    # is ending anyway, and killing it now would lose what is being sent.
    if _delivering:
        return
    hooks = list(_in_worker)
    worker = threading.Thread(target=_run_all, args=(hooks,), name="otel_feedback.sigterm")
    worker.start()
    worker.join(_SIGTERM_WAIT_S)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _run_all(hooks: list[ExitHook]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception as error:  # noqa: BLE001 - every processor gets its turn
            logger.warning("Delivering feedback before SIGTERM failed: %r", error)
            logger.debug("The error's traceback", exc_info=True)
