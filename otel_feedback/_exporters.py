"""The feedback exporter interface, and the exporters that need nothing but this process."""

from __future__ import annotations

import abc
import enum
import os
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from otel_feedback._model import Feedback

__all__ = [
    "ConsoleFeedbackExporter",
    "FeedbackExportResult",
    "FeedbackExporter",
    "InMemoryFeedbackExporter",
    "JsonlFeedbackExporter",
]


class FeedbackExportResult(enum.Enum):
    """Outcome of :meth:`FeedbackExporter.export`."""

    SUCCESS = 0
    """Delivered."""
    FAILURE = 1
    """Refused for good (a malformed batch, a permanent error): the records are dropped."""
    RETRY = 2
    """Not delivered for now (endpoint down, slow, or asking to come back later): the
    processor keeps the batch and sends it again later."""


class FeedbackExporter(abc.ABC):
    """Sends batches of :class:`Feedback` records somewhere.

    :class:`FeedbackSpanProcessor` calls these methods from its background thread, one call
    at a time, so an exporter needs no locking of its own for ``export``. An exporter may
    block while it sends, but should honour its own timeout; an exception it raises is
    caught, logged and counted as a failed batch. Return ``RETRY`` for a transient failure
    to have the batch sent again later.
    """

    @abc.abstractmethod
    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        """Send ``batch``; return whether it was delivered."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:  # noqa: ARG002
        """Deliver anything the exporter buffers itself; return whether it finished in time."""
        return True

    def shutdown(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; later exports fail."""


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


class ConsoleFeedbackExporter(FeedbackExporter):
    """Writes each record as indented JSON, LangSmith's format, to stdout (or ``out``)."""

    def __init__(self, *, out: TextIO | None = None) -> None:
        self._out = out

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        """Write ``batch``."""
        out = self._out if self._out is not None else sys.stdout
        out.write("".join(record.model_dump_json(indent=2) + "\n" for record in batch))
        out.flush()
        return FeedbackExportResult.SUCCESS


class JsonlFeedbackExporter(FeedbackExporter):
    """Appends each record to a file as one line of JSON, LangSmith's format.

    The file is opened for each batch, so it may be rotated or removed between batches.

    Example::

        JsonlFeedbackExporter("feedback.jsonl")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        if not self._path:
            raise ValueError("path: must not be empty")

    @property
    def path(self) -> str:
        """The file appended to."""
        return self._path

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        """Append ``batch``, one line per record, in one write."""
        lines = "".join(record.model_dump_json() + "\n" for record in batch)
        with open(self._path, "a", encoding="utf-8") as file:
            file.write(lines)
        return FeedbackExportResult.SUCCESS
