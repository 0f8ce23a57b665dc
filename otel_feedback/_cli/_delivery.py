"""Delivery for the record, import and evaluate commands: a private processor, and each fate.

The command records through the public ``record_feedback(trace_id=..., run_id=...)``. With no
SDK TracerProvider in this process, such feedback goes straight to the live
``FeedbackSpanProcessor``: the one built here from ``OTEL_PYTHON_FEEDBACK_EXPORTER`` and the
processor variables. Each exporter is watched, so that every record that was not delivered
can be named with the reason, beside the drop counts of the processor's ``stats()``.
Everything waits within the command's deadline (``--timeout``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import click
from opentelemetry.sdk.resources import Resource
from rich.text import Text

from otel_feedback import _environment as env
from otel_feedback._cli._common import EXIT_REFUSED, err_console
from otel_feedback._cli._deadline import Deadline, run_within
from otel_feedback._cli._destinations import destination_of
from otel_feedback._cli._redact import scrub
from otel_feedback._configure import exporters_from_names
from otel_feedback._export.base import (
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
    RetryLater,
)
from otel_feedback._export.processor import FeedbackSpanProcessor
from otel_feedback._model import Feedback
from otel_feedback._options import processor_options

__all__ = ["Delivery", "NoExporterError", "Notice", "Outcome"]


class NoExporterError(Exception):
    """``OTEL_PYTHON_FEEDBACK_EXPORTER`` chooses no exporter, or one could not be built."""


class _Watched(FeedbackExporter):
    """Passes batches on to an exporter and remembers what became of each record."""

    def __init__(self, inner: FeedbackExporter, name: str, not_yet: Callable[[str], None]) -> None:
        self.inner = inner
        self.name = name
        self._not_yet = not_yet
        self._said_not_yet = False
        self._lock = threading.Lock()
        self.delivered: set[UUID] = set()
        self.refused: dict[UUID, str] = {}

    def has_delivered(self, record_id: UUID) -> bool:
        with self._lock:
            return record_id in self.delivered

    def reason(self, record_id: UUID) -> str | None:
        with self._lock:
            return self.refused.get(record_id)

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        try:
            outcome = self.inner.export(batch)
        except Exception as error:
            # The engine splits the batch after this: a later success of a record wins.
            self._refuse(batch, f"{self.name} raised {type(error).__name__}")
            raise
        retried = isinstance(outcome, PartialFeedbackExport) and bool(outcome.retry)
        if retried or outcome is FeedbackExportResult.RETRY or isinstance(outcome, RetryLater):
            self._say_not_yet()
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

    def _say_not_yet(self) -> None:
        # Once per exporter: the first failed try is news, the backoff's later ones are not.
        if not self._said_not_yet:
            self._said_not_yet = True
            self._not_yet(self.name)

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
    """The processor's drop counts (``stats()``): comparable to failed_deliveries."""
    stuck: bool = False
    """An export was still blocked at the deadline: the process must end without it."""

    @property
    def delivered(self) -> int:
        """Records every exporter took."""
        return self.sent - len(self.failed)


Notice = Callable[[str], None]


class Delivery:
    """A FeedbackSpanProcessor with the configured exporters, within the command's deadline."""

    def __init__(self, deadline: Deadline, *, notice: Notice, verbose: bool = False) -> None:
        self.deadline = deadline
        self._notice = notice
        names = env.exporter_names()
        if not names:
            raise NoExporterError(
                f"{env.OTEL_PYTHON_FEEDBACK_EXPORTER}=none: no feedback exporter to send to"
            )
        _keep_sdk_timeout_within(deadline)
        exporters = _build(names)
        if not verbose:
            # From here on the command reports every record that was not delivered, by
            # itself; the exporters' and the SDK's log lines would say it twice.
            for name in ("otel_feedback", "opentelemetry"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        self.destinations = [destination_of(name) for name in names]
        self.exporter_names = [type(e).__name__ for e in exporters]
        self._watched = [_Watched(e, type(e).__name__, self._not_yet) for e in exporters]
        options = processor_options()
        # The other options come from the environment, as for any processor built in code.
        left_ms = max(1.0, deadline.left() * 1000)
        self.processor = FeedbackSpanProcessor(
            list(self._watched),
            export_timeout_millis=left_ms,
            # Not delivered before the command's deadline: dropped, counted and reported.
            retry_for_millis=left_ms,
        )
        self.batch_size = options.max_export_batch_size
        self._ids: list[UUID] = []
        self._known: set[UUID] = set()
        self._waiting_said = False

    def sent(self, record_id: UUID) -> None:
        """Note a record handed to ``record_feedback`` (an id sent again is one record)."""
        if record_id not in self._known:
            self._known.add(record_id)
            self._ids.append(record_id)

    def flush(self) -> bool:
        """Wait for what was sent so far, until the deadline; ``False`` when it was not done.

        After half a second without delivery, the user is told what is being waited for.
        """
        left = self.deadline.left()
        if left <= 0:
            return False
        done, flushed = run_within(
            self.deadline,
            lambda: self.processor.force_flush(max(1, int(left * 1000))),
            meanwhile=self.say_waiting,
        )
        return done and bool(flushed)

    def say_waiting(self) -> None:
        """Tell the user, once, where records are going and how long the command may wait."""
        if self._waiting_said or self.deadline.passed():
            return
        self._waiting_said = True
        self._notice(
            f"waiting for delivery to {'; '.join(self.destinations)}: "
            f"at most {self.deadline.left():.1f} s more ({self.deadline.origin})"
        )

    def _not_yet(self, exporter: str) -> None:
        self.say_waiting()
        self._notice(
            f"{exporter} has not delivered yet (its endpoint is down, slow or busy); "
            f"trying again for at most {self.deadline.left():.1f} s"
        )

    def finish(self) -> Outcome:
        """Flush, shut the processor down, and say what became of every record sent.

        Bounded by the deadline: a shutdown still blocked then is left behind, and every
        record not delivered by that time is reported as such.
        """

        def close() -> int:
            left_ms = int(self.deadline.left() * 1000)
            if left_ms > 0:
                self.processor.force_flush(left_ms)
            self.processor.shutdown()
            return sum(sum(reasons.values()) for reasons in self.processor.stats().dropped.values())

        done, dropped = run_within(self.deadline, close)
        failed: dict[UUID, str] = {}
        failed_deliveries = 0
        for record_id in self._ids:
            for watched in self._watched:
                if watched.has_delivered(record_id):
                    continue
                failed_deliveries += 1
                failed.setdefault(
                    record_id,
                    watched.reason(record_id)
                    or f"not delivered by {watched.name} within {self.deadline.seconds:g} s "
                    "(see `otel-feedback doctor`)",
                )
        return Outcome(
            sent=len(self._ids),
            failed=failed,
            failed_deliveries=failed_deliveries,
            dropped_records=dropped if done and dropped is not None else failed_deliveries,
            stuck=not done,
        )


_SDK_TIMEOUT_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")


def _keep_sdk_timeout_within(deadline: Deadline) -> None:
    # The SDK's OTLP exporter retries inside one export for up to its own timeout (10 s by
    # default): kept within the command's, so that its failure is seen and reported in time.
    configured = None
    for name in _SDK_TIMEOUT_VARIABLES:
        try:
            configured = float(os.environ[name])
            break
        except (KeyError, ValueError):
            continue
    left = max(0.1, deadline.left())
    if configured is None or configured > left:
        os.environ["OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"] = f"{left:.3f}"


class _BuildFailures(logging.Handler):
    """Catches why an exporter could not be built, said in a log record by the factory."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        reason = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            reason += f": {record.exc_info[1]}"
        self.reasons.append(reason)


def _build(names: Sequence[str]) -> list[FeedbackExporter]:
    """The exporters ``names`` asks for; all of them, or NoExporterError naming each failure."""
    catcher = _BuildFailures()
    logger = logging.getLogger("otel_feedback")
    logger.addHandler(catcher)
    propagate, logger.propagate = logger.propagate, False
    try:
        exporters = exporters_from_names(names, Resource.create())
    finally:
        logger.removeHandler(catcher)
        logger.propagate = propagate
    if len(exporters) < len(names) or catcher.reasons:
        reasons = "; ".join(catcher.reasons) or "an exporter could not be built"
        raise NoExporterError(
            f"{env.OTEL_PYTHON_FEEDBACK_EXPORTER}={','.join(names)}: {reasons} "
            "(nothing was sent; `otel-feedback doctor` checks the configuration)"
        )
    return exporters


def open_delivery(
    ctx: click.Context, deadline: Deadline, *, notice: Notice, verbose: bool
) -> Delivery:
    """A :class:`Delivery`; with no exporter configured, says so and ends the command (exit 1)."""
    try:
        return Delivery(deadline, notice=notice, verbose=verbose)
    except NoExporterError as error:
        err_console.print(Text.assemble(("Not sent: ", "red"), scrub(str(error))))
        ctx.exit(EXIT_REFUSED)
