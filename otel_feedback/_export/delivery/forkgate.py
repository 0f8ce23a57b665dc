"""A fork waits until no background thread is inside pydantic-core.

pydantic-core (Rust) keeps internal locks while it validates and serialises; a thread inside
it when another thread forks leaves such a lock held forever in the child, where every later
validation or serialisation then hangs (a child forked mid-batch delivered nothing). The
intake and the routes run their pydantic work (building records, exporting, reading the
spool) inside :func:`inside`; a fork waits for them to leave, ``FORK_WAIT_S`` at most (an
export waiting on the network can hold a fork that long), and no thread enters until the
fork is done. In the child the gate starts afresh.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FORK_WAIT_S", "inside"]

FORK_WAIT_S = 1.0


class _Gate:
    def __init__(self) -> None:
        self.cv = threading.Condition(threading.Lock())
        self.inside = 0
        self.forking = False


_gate = _Gate()


@contextmanager
def inside() -> Iterator[None]:
    """Run the block with no fork cutting through it."""
    gate = _gate
    with gate.cv:
        while gate.forking:
            gate.cv.wait()
        gate.inside += 1
    try:
        yield
    finally:
        with gate.cv:
            gate.inside -= 1
            if not gate.inside:
                gate.cv.notify_all()


def _before_fork() -> None:
    gate = _gate
    gate.cv.acquire()
    gate.forking = True
    # Waiting releases the lock, so that threads inside can leave; the lock is held again
    # (and through the fork) once they have, or the wait is over.
    gate.cv.wait_for(lambda: gate.inside == 0, FORK_WAIT_S)


def _after_fork_in_parent() -> None:
    gate = _gate
    gate.forking = False
    gate.cv.notify_all()
    gate.cv.release()


def _after_fork_in_child() -> None:
    global _gate  # noqa: PLW0603 - the child's threads are gone: a gate of its own
    _gate = _Gate()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
