"""ConsoleFeedbackExporter: each record as indented JSON on stdout."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from otel_feedback._export.base import FeedbackExporter, FeedbackExportResult
from otel_feedback._model import Feedback

__all__ = ["ConsoleFeedbackExporter"]


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
