"""Records made on a live span, kept aside until that span ends.

A span keeps at most ``OTEL_SPAN_EVENT_COUNT_LIMIT`` events and silently evicts the oldest,
and span limits may truncate attribute values. Each live processor therefore also keeps the
records made on a span it may see end, keyed by the span's ids, and takes them back in
``on_end``: the record survives whatever happens to its event. The live processors are
also where feedback goes directly when no span can carry it.
"""

from __future__ import annotations

import threading
from typing import Protocol

from otel_feedback._log import warn_once
from otel_feedback._recording.recorded import RecordedFeedback

__all__ = ["FeedbackSink", "PendingRecords", "live_sinks", "register", "unregister"]

SpanKey = tuple[int, int]


class PendingRecords:
    """The records waiting for their span to end, for one processor; bounded."""

    def __init__(self, max_spans: int) -> None:
        self._max_spans = max_spans
        self.by_span: dict[SpanKey, list[RecordedFeedback]] = {}
        """Records by span. Only a span's first record takes the lock (for the bound);
        later records, pops and emptiness checks rely on dict and list operations being
        atomic."""
        self._lock = threading.Lock()

    def add(self, key: SpanKey, record: RecordedFeedback) -> None:
        # A span's second record needs no lock: dict.get and list.append are atomic. Should
        # the span end in between, its on_end still finds this record's event on the span.
        records = self.by_span.get(key)
        if records is not None:
            records.append(record)
            return
        with self._lock:
            records = self.by_span.get(key)
            if records is not None:
                records.append(record)
                return
            if len(self.by_span) >= self._max_spans:
                # Spans that never end here (another TracerProvider's, or leaked ones) must not
                # grow this forever. Their records are still on their span events.
                self.by_span.pop(next(iter(self.by_span)), None)  # unless it just ended
                warn_once(
                    "pending-evicted",
                    "More than %d spans with feedback are still open; the oldest span's "
                    "records now rely on its span events alone",
                    self._max_spans,
                )
            self.by_span[key] = [record]

    def pop(self, trace_id: int, span_id: int) -> list[RecordedFeedback] | None:
        # No lock: dict.pop is atomic, and this runs for every span of the application.
        return self.by_span.pop((trace_id, span_id), None) if self.by_span else None

    def __len__(self) -> int:
        return len(self.by_span)


class FeedbackSink(Protocol):
    """What record_feedback hands records to: each live FeedbackSpanProcessor."""

    def _keep_aside(self, trace_id: int, span_id: int, record: RecordedFeedback) -> None:
        """Keep ``record`` until the span (trace_id, span_id) ends here."""

    def _submit(self, record: RecordedFeedback) -> None:
        """Export ``record`` with no span to carry it."""


# Copy-on-write tuple: record_feedback iterates it without taking a lock.
_live: tuple[FeedbackSink, ...] = ()
_live_lock = threading.Lock()


def live_sinks() -> tuple[FeedbackSink, ...]:
    return _live


def register(sink: FeedbackSink) -> None:
    global _live  # noqa: PLW0603
    with _live_lock:
        _live = (*_live, sink)


def unregister(sink: FeedbackSink) -> None:
    global _live  # noqa: PLW0603
    with _live_lock:
        _live = tuple(s for s in _live if s is not sink)
