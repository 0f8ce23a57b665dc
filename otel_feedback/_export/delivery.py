"""Delivery to one exporter: call it safely, and keep what a transient failure sent back.

An exporter that answers ``RETRY`` (its endpoint is down, slow, or asks to come back later)
gets its batch back in a backlog, tried again with a growing delay. While a backlog exists,
new batches join it instead of hammering an endpoint that is down; one probe at a time
finds out when it is back. The backlog is bounded in records and in age: what falls out is
dropped, counted and logged once. Everything here runs on the processor's background thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from otel_feedback._export.base import FeedbackExporter, FeedbackExportResult
from otel_feedback._log import logger, warn_once
from otel_feedback._model import Feedback

__all__ = ["Delivery"]

_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 10.0

DropCallback = Callable[[int, str], None]
ExportedCallback = Callable[[int], None]
SettledCallback = Callable[[Sequence[Feedback]], None]


@dataclass
class _Held:
    records: Sequence[Feedback]
    since: float


@dataclass
class Delivery:
    """The way to one exporter, with its backlog."""

    exporter: FeedbackExporter
    max_records: int
    retry_for_s: float
    on_drop: DropCallback
    on_exported: ExportedCallback
    on_settled: SettledCallback
    """Called with records this exporter is done with: delivered, or refused for good."""
    _backlog: deque[_Held] = field(default_factory=deque)
    _held_records: int = 0
    _backoff_s: float = _FIRST_BACKOFF_S
    _next_try: float = 0.0

    @property
    def held_records(self) -> int:
        """Records waiting in the backlog."""
        return self._held_records

    @property
    def next_try(self) -> float | None:
        """When the backlog is due (monotonic seconds), or None without a backlog."""
        return self._next_try if self._backlog else None

    def send(self, records: Sequence[Feedback]) -> None:
        """Export ``records``, or hold them behind a backlog that is already there."""
        if self._backlog:
            self._hold(records, time.monotonic())
            return
        result = self._call(records)
        if result is FeedbackExportResult.RETRY:
            self._hold(records, time.monotonic())
            self._schedule(time.monotonic())

    def retry(self, *, now: float, due_only: bool) -> None:
        """Send the backlog, oldest first, while the exporter takes it."""
        if not self._backlog or (due_only and now < self._next_try):
            return
        self._expire(now)
        while self._backlog:
            held = self._backlog[0]
            result = self._call(held.records, backlog=True)
            if result is FeedbackExportResult.RETRY:
                self._schedule(time.monotonic())
                return
            self._backlog.popleft()
            self._held_records -= len(held.records)
            self._backoff_s = _FIRST_BACKOFF_S

    def forget(self) -> None:
        """Start with no backlog (in a forked child: the parent still holds those records)."""
        self._backlog.clear()
        self._held_records = 0
        self._backoff_s = _FIRST_BACKOFF_S

    def give_up(self, reason: str) -> None:
        """Drop the whole backlog (at shutdown)."""
        if self._held_records:
            self.on_drop(self._held_records, f"{self._name} {reason}")
        self._backlog.clear()
        self._held_records = 0

    @property
    def _name(self) -> str:
        return type(self.exporter).__name__

    def _call(self, records: Sequence[Feedback], *, backlog: bool = False) -> object:
        try:
            result = self.exporter.export(records)
        except Exception:  # noqa: BLE001 - a faulty exporter must not stop the others
            logger.debug("Feedback exporter %r raised", self.exporter, exc_info=True)
            warn_once(
                f"export-raised:{id(self.exporter)}",
                "Feedback exporter %r raised while exporting; see the DEBUG log of "
                "'otel_feedback' for the traceback",
                self.exporter,
            )
            result = FeedbackExportResult.FAILURE
        if result is FeedbackExportResult.SUCCESS:
            self.on_exported(len(records))
            self.on_settled(records)
        elif result is FeedbackExportResult.FAILURE:
            self.on_drop(len(records), f"{self._name} failed to export")
            self.on_settled(records)
        elif not backlog:
            warn_once(
                f"export-retry:{id(self.exporter)}",
                "%s could not export now; its records are kept and retried (up to %d records "
                "for %gs)",
                self._name,
                self.max_records,
                self.retry_for_s,
            )
        return result

    def _hold(self, records: Sequence[Feedback], now: float) -> None:
        self._backlog.append(_Held(records, now))
        self._held_records += len(records)
        while self._held_records > self.max_records:
            oldest = self._backlog.popleft()
            self._held_records -= len(oldest.records)
            self.on_drop(len(oldest.records), f"{self._name}'s retry backlog is full")

    def _expire(self, now: float) -> None:
        while self._backlog and now - self._backlog[0].since > self.retry_for_s:
            old = self._backlog.popleft()
            self._held_records -= len(old.records)
            self.on_drop(
                len(old.records), f"{self._name} could not export them for {self.retry_for_s:g}s"
            )

    def _schedule(self, now: float) -> None:
        self._next_try = now + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)
