"""The feedback exporter interface and its result contract.

An exporter only translates and sends. Everything about delivery (batching, retry with
backoff, holding while an endpoint is down, the spool, counting what is lost and why) is
the engine's, in :mod:`otel_feedback._export.engine`.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from otel_feedback._model import Feedback

__all__ = ["ExportOutcome", "FeedbackExportResult", "FeedbackExporter", "PartialFeedbackExport"]


class FeedbackExportResult(enum.Enum):
    """Outcome of :meth:`FeedbackExporter.export` for a whole batch."""

    SUCCESS = 0
    """Delivered."""
    FAILURE = 1
    """Refused for good. The engine then tries the records one by one, so that a single bad
    record does not take the others with it; what is still refused alone is dropped,
    counted and logged."""
    RETRY = 2
    """Not delivered for now (endpoint down, slow, or asking to come back later): the
    engine holds the batch and sends it again with a growing delay."""


@dataclass(frozen=True)
class PartialFeedbackExport:
    """Outcome of :meth:`FeedbackExporter.export` when records of a batch fared differently.

    Every record of the batch named in neither field was delivered.

    Example::

        return PartialFeedbackExport(
            retry=[r for r in batch if r.run_id in not_ingested_yet],
            refused=[(r, "HTTP 400: key is reserved") for r in batch if r.key == "note"],
        )

    Attributes:
        retry: records to send again later (the receiver cannot take them yet).
        refused: records refused for good, each with the reason; they are dropped, counted
            under that reason, and logged.
    """

    retry: Sequence[Feedback] = ()
    refused: Sequence[tuple[Feedback, str]] = ()


ExportOutcome = FeedbackExportResult | PartialFeedbackExport


class FeedbackExporter(abc.ABC):
    """Sends batches of :class:`Feedback` records somewhere.

    :class:`FeedbackSpanProcessor` calls ``export`` from its background thread, one call at
    a time per exporter, so an exporter needs no locking of its own. ``export`` may block
    while it sends, but must honour its own timeout; it keeps no thread, queue, timer or
    counter of its own: it answers what became of the batch, and the engine does the rest.
    An exception it raises counts like ``FAILURE`` (the records are then tried one by one).
    """

    @abc.abstractmethod
    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send ``batch``; say what became of it."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:  # noqa: ARG002
        """Deliver anything the exporter buffers itself; return whether it finished in time."""
        return True

    def shutdown(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; later exports fail."""
