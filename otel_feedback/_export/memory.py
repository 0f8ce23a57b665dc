"""InMemoryFeedbackExporter: keeps records in memory, for tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from otel_feedback._export.base import FeedbackExporter, FeedbackExportResult
from otel_feedback._model import Feedback

__all__ = ["InMemoryFeedbackExporter"]


class InMemoryFeedbackExporter(FeedbackExporter):
    """Keeps exported records in memory: for tests, yours and ours.

    Example::

        exporter = InMemoryFeedbackExporter()
        provider.add_span_processor(FeedbackSpanProcessor(exporter))
        ...
        processor.force_flush()
        assert exporter.get_finished_feedback()[0].score == 1
    """

    def __init__(self) -> None:
        self._records: list[Feedback] = []
        self._lock = threading.Lock()
        self._stopped = False

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        """Keep ``batch``."""
        if self._stopped:
            return FeedbackExportResult.FAILURE
        with self._lock:
            self._records.extend(batch)
        return FeedbackExportResult.SUCCESS

    def get_finished_feedback(self) -> tuple[Feedback, ...]:
        """The records exported so far, oldest first."""
        with self._lock:
            return tuple(self._records)

    def clear(self) -> None:
        """Forget the records exported so far."""
        with self._lock:
            self._records.clear()

    def shutdown(self) -> None:
        """Refuse later exports; the records stay readable."""
        self._stopped = True
