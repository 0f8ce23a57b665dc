"""Producers of feedback that work in the background, which exporting waits for first.

Online evaluation records its results as its evaluations end, on its own threads. A
FeedbackSpanProcessor that flushes or shuts down first lets running evaluations finish
(within half its own deadline), whatever order the processors were added to the provider in, so
that their results are exported rather than found after the exporters stopped.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Protocol

__all__ = ["UPSTREAM_SHARE", "Upstream", "close_upstream", "flush_upstream", "register_upstream"]

UPSTREAM_SHARE = 0.5
"""The share of a flush's or shutdown's time given to evaluations under way; the rest is the
delivery's, so that an evaluator that hangs never costs the feedback already queued."""


class Upstream(Protocol):
    """A background producer of feedback (an online evaluation processor)."""

    def _flush_upstream(self, timeout_s: float) -> bool:
        """Finish what is under way within ``timeout_s``; False if time ran out."""
        ...  # pragma: no cover - a protocol

    def _close_upstream(self, sink: object) -> None:
        """``sink`` (a FeedbackSpanProcessor) is shutting down.

        When it was the last to take this producer's feedback, stop at once: what is not done
        is counted, never waited for.
        """
        ...  # pragma: no cover - a protocol


_producers: weakref.WeakSet[Upstream] = weakref.WeakSet()
_lock = threading.Lock()


def register_upstream(producer: Upstream) -> None:
    """Have every FeedbackSpanProcessor wait for ``producer`` before its own flush."""
    with _lock:
        _producers.add(producer)


def flush_upstream(timeout_s: float) -> bool:
    """Let every producer finish what is under way, all within ``timeout_s``."""
    with _lock:
        producers = list(_producers)
    deadline = time.monotonic() + timeout_s
    done = True
    for producer in producers:
        done = producer._flush_upstream(max(0.0, deadline - time.monotonic())) and done  # noqa: SLF001
    return done


def close_upstream(sink: object) -> None:
    """``sink`` is shutting down: the producers whose feedback no other processor takes stop."""
    with _lock:
        producers = list(_producers)
    for producer in producers:
        producer._close_upstream(sink)  # noqa: SLF001
