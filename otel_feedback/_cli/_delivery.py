"""Delivery for ``record`` and ``import``: a private processor, and what became of each record.

The command records through the public ``record_feedback(trace_id=..., run_id=...)``. With no
SDK TracerProvider in this process, such feedback goes straight to the live
``FeedbackSpanProcessor``: the one built here from ``OTEL_PYTHON_FEEDBACK_EXPORTER`` and the
processor variables. Each exporter is watched, so that every record that was not delivered
can be named with the reason, beside the processor's own ``dropped_records`` count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from opentelemetry.sdk.resources import Resource

from otel_feedback import _environment as env
from otel_feedback._configure import exporters_from_names
from otel_feedback._export.base import (
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
)
from otel_feedback._export.processor import FeedbackSpanProcessor
from otel_feedback._model import Feedback

__all__ = ["Delivery", "NoExporterError", "Outcome"]


class NoExporterError(Exception):
    """``OTEL_PYTHON_FEEDBACK_EXPORTER`` chooses no exporter (or none could be built)."""


class _Watched(FeedbackExporter):
    """Passes batches on to an exporter and remembers what became of each record."""

    def __init__(self, inner: FeedbackExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self._lock = threading.Lock()
        self.delivered: set[UUID] = set()
        self.refused: dict[UUID, str] = {}

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        try:
            outcome = self.inner.export(batch)
        except Exception as error:
            # The engine splits the batch after this: a later success of a record wins.
            self._refuse(batch, f"{self.name} raised {type(error).__name__}")
            raise
        if outcome is FeedbackExportResult.SUCCESS:
            self._deliver(batch)
        elif outcome is FeedbackExportResult.FAILURE:
            self._refuse(batch, f"refused by {self.name}")
        elif isinstance(outcome, PartialFeedbackExport):
            held = {r.id for r in outcome.retry} | {r.id for r, _ in outcome.refused}
            self._deliver([r for r in batch if r.id not in held])
            with self._lock:
                for record, reason in outcome.refused:
                    self.refused[record.id] = f"refused by {self.name}: {reason}"
        return outcome

    def _deliver(self, batch: Sequence[Feedback]) -> None:
        with self._lock:
            for record in batch:
                self.delivered.add(record.id)
                self.refused.pop(record.id, None)

    def _refuse(self, batch: Sequence[Feedback], reason: str) -> None:
        with self._lock:
            for record in batch:
                if record.id not in self.delivered:
                    self.refused[record.id] = reason

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


@dataclass
class Outcome:
    """What became of the records handed to a :class:`Delivery`."""

    sent: int = 0
    failed: dict[UUID, str] = field(default_factory=dict)
    """Each record some exporter did not deliver, with the first such exporter's reason."""
    failed_deliveries: int = 0
    """Records not delivered, once per exporter that did not deliver them."""
    dropped_records: int = 0
    """The processor's (and exporters' own) drop counts: comparable to failed_deliveries."""

    @property
    def delivered(self) -> int:
        """Records every exporter took."""
        return self.sent - len(self.failed)


class Delivery:
    """A FeedbackSpanProcessor with the configured exporters, and a deadline for delivery."""

    def __init__(self, *, timeout_s: float | None, verbose: bool = False) -> None:
        names = env.exporter_names()
        exporters = exporters_from_names(names, Resource.create())
        if not verbose:
            # From here on the command reports every record that was not delivered, by
            # itself; the exporters' and the SDK's log lines would say it twice.
            for name in ("otel_feedback", "opentelemetry"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        if not exporters:
            chosen = ",".join(names) or "none"
            raise NoExporterError(
                f"{env.OTEL_PYTHON_FEEDBACK_EXPORTER}={chosen}: no feedback exporter to send to"
            )
        self.exporter_names = [type(e).__name__ for e in exporters]
        self._watched = [_Watched(e, type(e).__name__) for e in exporters]
        options = env.processor_options()
        if timeout_s is None:
            timeout_s = options.export_timeout_millis / 1000
        self.timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        # The other options come from the environment, as for any processor built in code.
        self.processor = FeedbackSpanProcessor(
            list(self._watched),
            export_timeout_millis=timeout_s * 1000,
            # Not delivered before the command's deadline: dropped, counted and reported.
            retry_for_millis=timeout_s * 1000,
        )
        self.batch_size = options.max_export_batch_size
        self._ids: list[UUID] = []

    def sent(self, record_id: UUID) -> None:
        """Note a record handed to ``record_feedback``."""
        self._ids.append(record_id)

    def flush(self) -> bool:
        """Wait for what was sent so far, until the deadline; ``False`` when it passed."""
        remaining_ms = int(max(0.0, self._deadline - time.monotonic()) * 1000)
        if remaining_ms == 0:
            return False
        return self.processor.force_flush(remaining_ms)

    def finish(self) -> Outcome:
        """Flush, shut the processor down, and say what became of every record sent."""
        self.flush()
        self.processor.shutdown()
        failed: dict[UUID, str] = {}
        failed_deliveries = 0
        for record_id in self._ids:
            for watched in self._watched:
                if record_id in watched.delivered:
                    continue
                failed_deliveries += 1
                failed.setdefault(
                    record_id,
                    watched.refused.get(
                        record_id,
                        f"not delivered by {watched.name} within {self.timeout_s:g} s "
                        "(see `otel-feedback doctor`)",
                    ),
                )
        return Outcome(
            sent=len(self._ids),
            failed=failed,
            failed_deliveries=failed_deliveries,
            dropped_records=self.processor.dropped_records,
        )
