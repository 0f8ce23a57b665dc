"""Reading what an exporter answered: which records were delivered, to retry, or refused."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from otel_feedback._export.base import (
    BatchRefusedError,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
    RetryLater,
)
from otel_feedback._log import logger
from otel_feedback._model import Feedback

__all__ = ["Outcome", "export_each"]


@dataclass
class Outcome:
    """What became of the records of one export call."""

    delivered: list[Feedback] = field(default_factory=list)
    retry: list[Feedback] = field(default_factory=list)
    refused: list[tuple[Feedback, str]] = field(default_factory=list)
    down: bool = False
    """The endpoint is unavailable (a whole-batch retry), not merely unready for some."""
    retry_after_s: float | None = None
    """The endpoint said when to come back."""

    def add(self, other: Outcome) -> Outcome:
        """This outcome and ``other``, as one."""
        self.delivered += other.delivered
        self.retry += other.retry
        self.refused += other.refused
        self.down = self.down or other.down
        if other.retry_after_s is not None:
            self.retry_after_s = max(self.retry_after_s or 0.0, other.retry_after_s)
        return self

    def reasons(self) -> Counter[str]:
        """The refused records, counted per reason."""
        return Counter(f"refused: {reason}" for _, reason in self.refused)


def export_each(exporter: FeedbackExporter, batch: list[Feedback]) -> Outcome:
    """Export ``batch`` and sort its records by what became of them.

    An exporter that raises is given each half of the batch in turn, down to single
    records, so that one record it cannot handle does not take the others with it.
    """
    try:
        answer: Any = exporter.export(batch)
    except BaseException as error:  # noqa: BLE001 - one bad record must not sink its batch
        # (SystemExit and the like too: raised on a route's thread, they would end it.)
        if len(batch) == 1:
            logger.debug("%s raised on a record", type(exporter).__name__, exc_info=True)
            return Outcome(refused=[(batch[0], _reason_of(error))])
        middle = math.ceil(len(batch) / 2)
        first = export_each(exporter, batch[:middle])
        return first.add(export_each(exporter, batch[middle:]))
    try:
        return read(answer, batch)
    except Exception:  # noqa: BLE001 - an answer the contract does not allow
        logger.debug("%s answered %r", type(exporter).__name__, answer, exc_info=True)
        reason = f"the exporter answered {type(answer).__name__}, which is not an outcome"
        return Outcome(refused=[(record, reason) for record in batch])


def read(answer: object, batch: list[Feedback]) -> Outcome:
    """The outcome an exporter's answer to ``batch`` stands for."""
    if answer is FeedbackExportResult.SUCCESS:
        return Outcome(delivered=batch)
    if answer is FeedbackExportResult.RETRY:
        return Outcome(retry=batch, down=True)
    if isinstance(answer, RetryLater):
        return Outcome(retry=batch, down=True, retry_after_s=_seconds(answer.after_s))
    if isinstance(answer, PartialFeedbackExport):
        # By identity: records of the batch only, each once (a refusal wins over a retry).
        left = {id(r): r for r in batch}
        refused = [(r, str(why)) for r, why in answer.refused if left.pop(id(r), None)]
        retry = [r for r in answer.retry if left.pop(id(r), None)]
        settled = {id(r) for r in retry} | {id(r) for r, _ in refused}
        return Outcome(
            delivered=[r for r in batch if id(r) not in settled],
            retry=retry,
            refused=refused,
            retry_after_s=_seconds(answer.retry_after_s) if retry else None,
        )
    reason = (
        "the batch was refused"
        if answer is FeedbackExportResult.FAILURE
        else f"the exporter answered {type(answer).__name__}, which is not an outcome"
    )
    return Outcome(refused=[(record, reason) for record in batch])


def _reason_of(error: BaseException) -> str:
    # An exporter's own refusal says why in its text; any other exception is named by its
    # type alone (its text may hold a URL with credentials).
    if isinstance(error, BatchRefusedError):
        return str(error)[:300] or "the batch was refused"
    return f"the exporter raised {type(error).__name__}"


def _seconds(value: object) -> float | None:
    """A usable delay in seconds, or None for one that is not a non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # An infinite delay is the longest one (the policy caps it); NaN and negatives say nothing.
    return float(value) if value >= 0 else None
