"""What became of the runs handed to evaluation: one count per outcome, each skip by reason."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Final

from otel_feedback._log import LossLog

__all__ = [
    "BUSY",
    "FILTERED",
    "FILTER_RAISED",
    "SAMPLED_OUT",
    "SHUT_DOWN",
    "UNFINISHED",
    "EvaluationStats",
    "Tally",
]

# Why a run was not judged. Sampled out and filtered are choices, not losses; the others are
# logged as losses too.
SAMPLED_OUT: Final = "sampled out"
FILTERED: Final = "filtered out"
FILTER_RAISED: Final = "span_filter raised"
BUSY: Final = "queue full (evaluators busy)"
SHUT_DOWN: Final = "after shutdown"
UNFINISHED: Final = "not evaluated before the shutdown deadline"
_CHOSEN = frozenset({SAMPLED_OUT, FILTERED})


@dataclass(frozen=True)
class EvaluationStats:
    """A snapshot of an evaluation runner's counts.

    ``queued`` runs were taken into the queue; each gives one evaluation per evaluator,
    unless it is given up at shutdown (``not evaluated before the shutdown deadline``, also
    counted in ``skipped``). Evaluations end ``succeeded`` (the evaluator returned only valid
    results, all recorded), ``failed`` (it raised, or returned something that is not a result,
    in full or in part), or ``timed_out``; those record ``error=True`` feedback saying why.
    ``skipped`` counts the runs not judged, by reason: spans ended = ``queued`` + the skips
    other than the shutdown's. ``pending`` runs wait, ``running`` evaluations run now.
    """

    queued: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    results: int = 0
    """Feedback records the evaluations produced (error records included)."""
    skipped: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    running: int = 0


class Tally:
    """The live counts behind :class:`EvaluationStats`, safe to bump from any thread."""

    def __init__(self, where: str = "OnlineEvaluationProcessor") -> None:
        self.where = where
        # The choices (sampled out, filtered out) are counted on the application's thread for
        # most spans: by C counters, each step atomic, without a lock.
        self._chosen = {reason: itertools.count() for reason in _CHOSEN}
        self._lock = threading.Lock()
        self._counts = {"succeeded": 0, "failed": 0, "timed_out": 0, "results": 0}
        self._skipped: dict[str, int] = {}
        self._losses = LossLog("span(s) from evaluation")

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._counts[name] += count

    def chose(self, reason: str) -> None:
        """One run not judged by choice (sampled out, filtered out): counted, never logged."""
        next(self._chosen[reason])

    def skip(self, reason: str, count: int = 1) -> None:
        """``count`` runs not judged for ``reason``; the reasons that are losses are logged."""
        with self._lock:
            self._skipped[reason] = self._skipped.get(reason, 0) + count
        if reason not in _CHOSEN:
            self._losses.report(self.where, reason, count)

    def snapshot(self, *, queued: int, pending: int, running: int) -> EvaluationStats:
        skipped = {reason: _value(counter) for reason, counter in self._chosen.items()}
        with self._lock:
            skipped.update(self._skipped)
            return EvaluationStats(
                queued=queued,
                **self._counts,
                skipped={reason: count for reason, count in skipped.items() if count},
                pending=pending,
                running=running,
            )

    def flush_log(self) -> None:
        """Log the losses not logged yet (they are logged at most every 30 s)."""
        self._losses.flush()

    def after_fork(self) -> None:
        """A forked child counts its own runs from zero, with a lock of its own."""
        self.__init__(self.where)  # type: ignore[misc]


def _value(counter: itertools.count[int]) -> int:
    """How far ``counter`` has counted, without counting: its repr is ``count(N)``."""
    return int(repr(counter)[6:-1])
