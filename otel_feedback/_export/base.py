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

__all__ = [
    "BatchRefusedError",
    "ExportOutcome",
    "FeedbackExportResult",
    "FeedbackExporter",
    "PartialFeedbackExport",
    "RetryLater",
]


class FeedbackExportResult(enum.Enum):
    """Outcome of :meth:`FeedbackExporter.export` for a whole batch."""

    SUCCESS = 0
    """Delivered."""
    FAILURE = 1
    """Refused for good: the batch is dropped, counted and logged. (An exporter that can
    tell which records were refused returns :class:`PartialFeedbackExport` instead; one
    that raises has its batch split, so that one bad record does not sink the others.)"""
    RETRY = 2
    """Not delivered for now because the endpoint is unavailable (down, slow, or asking to
    come back later): the engine holds the batch and probes the endpoint again with a
    growing delay. At shutdown, an endpoint in this state gets no further try."""


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
        retry: records to send again later: the receiver answered but cannot take them
            yet (for example, it has not ingested the span they judge). They are tried
            again with backoff for up to ``retry_for_millis``, within the shutdown deadline.
        refused: records refused for good, each with the reason; they are dropped, counted
            under that reason, and logged.
    """

    retry: Sequence[Feedback] = ()
    refused: Sequence[tuple[Feedback, str]] = ()
    retry_after_s: float | None = None
    """When the receiver said when to come back (``Retry-After``): the records in ``retry``
    are not sent again before that many seconds (capped by the shutdown deadline)."""


@dataclass(frozen=True)
class RetryLater:
    """Outcome of :meth:`FeedbackExporter.export`: unavailable, come back in ``after_s``.

    The endpoint said when (an HTTP ``Retry-After`` on a 429 or 503, in seconds or as a date).
    Like :attr:`FeedbackExportResult.RETRY` for the whole batch, except that the next try
    waits ``after_s`` seconds rather than the engine's own backoff (capped by the shutdown
    deadline: at shutdown an unavailable endpoint gets no further try).

    Example::

        return RetryLater(after_s=30.0)
    """

    after_s: float


ExportOutcome = FeedbackExportResult | PartialFeedbackExport | RetryLater


class BatchRefusedError(Exception):
    """Raised from :meth:`FeedbackExporter.export`: the endpoint refused the batch as a whole.

    Too large (HTTP 413), or a refusal that does not say which record: the engine sends each
    half in turn, down to single records; a record refused alone is dropped under this
    error's message. The one batch-halving rule: no exporter halves a batch itself.
    """


class FeedbackExporter(abc.ABC):
    """Sends batches of :class:`Feedback` records somewhere.

    :class:`FeedbackSpanProcessor` calls ``export`` from its background thread, one call at
    a time per exporter, so an exporter needs no locking of its own. ``export`` may block
    while it sends, but must honour its own timeout; it keeps no thread, queue, timer or
    counter of its own: it answers what became of the batch, and the engine does the rest.
    An exception it raises splits the batch in halves, tried in turn down to single records;
    a record that still raises alone is dropped, counted and logged with the exception.
    """

    @abc.abstractmethod
    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send ``batch``; say what became of it."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:  # noqa: ARG002
        """Deliver anything the exporter buffers itself; return whether it finished in time."""
        return True

    def shutdown(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; later exports fail."""
