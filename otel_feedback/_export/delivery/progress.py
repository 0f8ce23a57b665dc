"""A signal that some part of the engine changed state, for those waiting on all of them."""

from __future__ import annotations

import threading

__all__ = ["Progress"]


class Progress:
    """A generation counter: parts bump it; flush and shutdown wait for it to move.

    Its lock is a leaf (held for nothing but the counter), so any part may bump it while
    holding its own lock, and a waiter re-checks the parts without holding it.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._generation = 0

    @property
    def generation(self) -> int:
        """The current generation."""
        return self._generation

    def bump(self) -> None:
        """Something changed."""
        with self._cv:
            self._generation += 1
            self._cv.notify_all()

    def wait_past(self, generation: int, timeout_s: float) -> None:
        """Wait until the generation moves past ``generation``, at most ``timeout_s``."""
        with self._cv:
            self._cv.wait_for(lambda: self._generation != generation, max(timeout_s, 0.0))
