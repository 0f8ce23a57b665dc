"""JsonlFeedbackExporter: one line of JSON per record, appended to a file."""

from __future__ import annotations

import os
from collections.abc import Sequence

from otel_feedback._export.base import FeedbackExporter, FeedbackExportResult
from otel_feedback._model import Feedback

__all__ = ["JsonlFeedbackExporter"]


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
