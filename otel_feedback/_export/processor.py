"""FeedbackSpanProcessor: finds feedback on ending spans, exports it in the background."""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

from opentelemetry import context as context_api
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otel_feedback._attributes import EVENT_NAME
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._export.base import FeedbackExporter
from otel_feedback._export.delivery import Delivery
from otel_feedback._export.spool import Spool
from otel_feedback._log import logger, warn_once
from otel_feedback._model import Feedback
from otel_feedback._recording.handoff import FeedbackItem, feedback_of, register, unregister
from otel_feedback._version import __version__

__all__ = ["FeedbackSpanProcessor"]

# Read from a span, handed off by record_feedback, or sent again from the spool.
_Item = FeedbackItem | Feedback


class FeedbackSpanProcessor(SpanProcessor):
    """Exports the feedback recorded on each span when the span ends.

    ``on_end`` runs on the application's thread and only scans the span's events and queues
    what it finds; a background thread turns them into :class:`Feedback` records and hands
    them to the exporters in batches. A batch an exporter cannot take now (``RETRY``) is kept
    and retried with a growing delay. The queue and the retry backlogs are bounded: what
    cannot be kept, what an exporter refuses, and what waits longer than
    ``retry_for_millis`` is counted in :attr:`dropped_records` (and the
    ``otel_feedback.records.dropped`` metric) and logged once. Nothing raised in the
    background reaches the application.

    Example::

        provider = TracerProvider()
        provider.add_span_processor(FeedbackSpanProcessor(JsonlFeedbackExporter("fb.jsonl")))

    Args:
        exporter: one exporter, or several that each receive every batch.
        max_queue_size: records held at most while waiting for export (threads adding at the
            same instant may each put their few records past it, rather than wait on a lock).
        max_export_batch_size: records per ``export`` call at most.
        schedule_delay_millis: longest wait before a partial batch is exported.
        export_timeout_millis: default time ``force_flush`` and ``shutdown`` wait.
        retry_for_millis: how long a batch an exporter could not take (``RETRY``) is kept
            and retried; the retry backlog of each exporter holds ``max_queue_size``
            records at most.
        meter_provider: where the ``otel_feedback.records.dropped`` and
            ``otel_feedback.records.exported`` counters go; default the global one.
        spool_path: an sqlite file that keeps records until every exporter is done with
            them, so they outlive a crash or a long outage; records found there at start
            are sent again (at least once: receivers de-duplicate on the feedback id).

    Raises:
        ValueError: for a non-positive size or delay, or a batch larger than the queue.
    """

    def __init__(
        self,
        exporter: FeedbackExporter | Sequence[FeedbackExporter],
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_millis: float = 1000,
        export_timeout_millis: float = 30_000,
        retry_for_millis: float = 300_000,
        meter_provider: MeterProvider | None = None,
        spool_path: str | os.PathLike[str] | None = None,
    ) -> None:
        exporters: tuple[object, ...] = ()
        if isinstance(exporter, FeedbackExporter):
            exporters = (exporter,)
        elif isinstance(exporter, Sequence):
            exporters = tuple(exporter)
        if not exporters or not all(isinstance(e, FeedbackExporter) for e in exporters):
            raise ValueError("exporter: must be a FeedbackExporter or a non-empty sequence of them")
        for name, number in (
            ("max_queue_size", max_queue_size),
            ("max_export_batch_size", max_export_batch_size),
            ("schedule_delay_millis", schedule_delay_millis),
            ("export_timeout_millis", export_timeout_millis),
            ("retry_for_millis", retry_for_millis),
        ):
            if not number > 0:
                raise ValueError(f"{name}: must be positive, got {number!r}")
        if max_export_batch_size > max_queue_size:
            raise ValueError(
                f"max_export_batch_size: must not exceed max_queue_size ({max_queue_size}), "
                f"got {max_export_batch_size}"
            )
        self._exporters = cast(tuple[FeedbackExporter, ...], exporters)
        meter = metrics.get_meter("otel_feedback", __version__, meter_provider=meter_provider)
        self._dropped_counter = meter.create_counter(
            "otel_feedback.records.dropped",
            unit="{record}",
            description="Feedback records lost: queue full, refused, or not deliverable in time",
        )
        self._exported_counter = meter.create_counter(
            "otel_feedback.records.exported",
            unit="{record}",
            description="Feedback records delivered, counted once per exporter",
        )
        self._deliveries = tuple(
            Delivery(
                exporter,
                max_records=max_queue_size,
                retry_for_s=retry_for_millis / 1000,
                on_drop=self._drop,
                on_exported=self._count_exported(exporter),
                on_settled=self._settled,
            )
            for exporter in self._exporters
        )
        self._spool = Spool(os.fspath(spool_path)) if spool_path is not None else None
        self._max_queue_size = max_queue_size
        self._batch_size = max_export_batch_size
        self._delay_s = schedule_delay_millis / 1000
        self._timeout_millis = export_timeout_millis
        self._dropped = 0
        self._dropped_lock = threading.Lock()  # drops are counted from any thread
        self._is_shutdown = False
        self._init_worker()
        register(self)
        if self._spool is not None:
            self._resend_spooled(self._spool)
        # Like the SDK's batch processors: a forked child starts afresh, with its own lock,
        # queue and thread, and without the parent's records (the parent still sends those).
        reinit = weakref.WeakMethod(self._at_fork_reinit)
        os.register_at_fork(after_in_child=lambda: (m := reinit()) and m())
        # A process that exits without shutdown() still sends what is queued.
        at_exit = weakref.WeakMethod(self._flush_at_exit)
        atexit.register(lambda: (m := at_exit()) and m())

    def _flush_at_exit(self) -> None:
        if self._is_shutdown:
            return
        # Spans first: exporters such as Phoenix's place feedback on spans they have seen.
        # atexit runs hooks last-in first-out, so this hook, registered after the
        # provider's, would otherwise flush feedback before the spans left.
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            provider.force_flush(int(self._timeout_millis))
        self.force_flush()

    def _at_fork_reinit(self) -> None:
        for delivery in self._deliveries:
            delivery.forget()
        if self._spool is not None:
            self._spool.reopen()
        self._init_worker()

    def _resend_spooled(self, spool: Spool) -> None:
        # Left by an earlier process (a crash, a long outage): sent again, at least once.
        # What does not fit the queue stays on disk for the next start.
        records = spool.load()
        with self._condition:
            room = self._max_queue_size - len(self._queue)
            self._queue.extend(records[:room])
            self._condition.notify()
        if records:
            logger.info("Sending %d feedback record(s) again from %s", len(records), spool.path)

    def _init_worker(self) -> None:
        # A plain lock: nothing here takes it twice, and it is cheaper than the RLock default.
        self._condition = threading.Condition(threading.Lock())
        self._queue: deque[_Item] = deque()
        self._flush_waiters: list[threading.Event] = []
        self._worker = threading.Thread(
            name="otel_feedback.FeedbackSpanProcessor", target=self._run, daemon=True
        )
        self._worker.start()

    @property
    def dropped_records(self) -> int:
        """Records lost so far, once per exporter that lost them.

        Refused by the full queue, refused by an exporter, or not delivered within
        ``retry_for_millis``.
        """
        return self._dropped

    @property
    def retrying_records(self) -> int:
        """Records held for another try because an exporter could not take them yet."""
        return sum(d.held_records for d in self._deliveries)

    def _settled(self, records: Sequence[Feedback]) -> None:
        if self._spool is not None:
            self._spool.settle(records)

    def _count_exported(self, exporter: FeedbackExporter) -> Callable[[int], None]:
        attributes = {"exporter": type(exporter).__name__}
        return lambda count: self._exported_counter.add(count, attributes)

    def _submit(self, item: FeedbackItem) -> None:
        if not self._is_shutdown:
            self._enqueue([item])

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the feedback of ``span``. Runs on the application's thread: scan, hand off."""
        if self._is_shutdown:
            return
        items = feedback_of(span)
        if items:
            self._enqueue(items)

    def _enqueue(self, items: Sequence[_Item]) -> None:
        # No lock on this path, which runs on the application's threads: deque.extend and
        # len are atomic, so threads racing here can overshoot the bound by their own few
        # items at most. The lock is taken only to wake the worker when a batch fills.
        queue = self._queue
        room = self._max_queue_size - len(queue)
        if room < len(items):
            self._drop(len(items) - room, "the feedback queue is full")
            items = items[: max(room, 0)]
        before = len(queue)
        queue.extend(items)
        if before < self._batch_size <= len(queue):
            with self._condition:
                self._condition.notify()

    def _drop(self, count: int, reason: str) -> None:
        with self._dropped_lock:
            self._dropped += count
        self._dropped_counter.add(count, {"reason": reason})
        warn_once(
            f"dropped:{id(self)}:{reason}",
            "Dropped %d feedback record(s): %s (later drops are counted in "
            "FeedbackSpanProcessor.dropped_records, and summed up at shutdown)",
            count,
            reason,
        )

    def _run(self) -> None:
        while True:
            with self._condition:
                if not (
                    self._is_shutdown or self._flush_waiters or len(self._queue) >= self._batch_size
                ):
                    self._condition.wait(self._wait_s())
                stopping = self._is_shutdown
                waiters, self._flush_waiters = self._flush_waiters, []
            # Exports run with instrumentation suppressed: the exporters' own HTTP or gRPC
            # calls must not be traced.
            token = context_api.attach(
                context_api.set_value(context_api._SUPPRESS_INSTRUMENTATION_KEY, True)  # noqa: SLF001
            )
            try:
                self._drain()
                # A flush or shutdown tries every backlog once, due or not.
                for delivery in self._deliveries:
                    delivery.retry(now=time.monotonic(), due_only=not (waiters or stopping))
            except Exception:  # noqa: BLE001 - the worker must outlive any bug of ours
                warn_once("worker-error", "Feedback export hit an error", exc_info=True)
            finally:
                context_api.detach(token)
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _wait_s(self) -> float:
        due = [t for d in self._deliveries if (t := d.next_try) is not None]
        if not due:
            return self._delay_s
        return max(0.0, min(self._delay_s, min(due) - time.monotonic()))

    def _drain(self) -> None:
        while True:
            # Only this thread takes from the queue, and popleft is atomic: no lock.
            queue = self._queue
            if not queue:
                return
            batch = [queue.popleft() for _ in range(min(self._batch_size, len(queue)))]
            self._export(batch)

    def _export(self, batch: list[_Item]) -> None:
        records = [record for item in batch if (record := _to_record(item)) is not None]
        if records:
            if self._spool is not None:
                self._spool.keep(records, len(self._deliveries))
            for delivery in self._deliveries:
                delivery.send(records)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export everything queued so far; ``True`` if it was delivered within the timeout.

        Batches an exporter could not take are tried again, at their backoff, until they
        are delivered or the timeout passes.
        """
        if self._is_shutdown:
            return True
        timeout_s = (timeout_millis if timeout_millis is not None else self._timeout_millis) / 1000
        deadline = time.monotonic() + timeout_s
        while True:
            done = threading.Event()
            with self._condition:
                self._flush_waiters.append(done)
                self._condition.notify()
            if not done.wait(max(0.0, deadline - time.monotonic())):
                return False
            due = [t for d in self._deliveries if (t := d.next_try) is not None]
            if not due:
                break
            pause = min(due) - time.monotonic()
            if min(due) >= deadline:
                return False
            if pause > 0:
                # The backoff of an exporter that could not take its batch yet.
                threading.Event().wait(pause)
        remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
        return all(e.force_flush(remaining_ms) for e in self._exporters)

    def shutdown(self) -> None:
        """Export what is queued, stop the background thread, and shut the exporters down."""
        if self._is_shutdown:
            return
        with self._condition:
            self._is_shutdown = True
            self._condition.notify()
        self._worker.join(self._timeout_millis / 1000)
        unregister(self)
        if not self._worker.is_alive():
            for delivery in self._deliveries:
                delivery.give_up("was still unreachable at shutdown")
        for exporter in self._exporters:
            try:
                exporter.shutdown()
            except Exception:  # noqa: BLE001 - shutting down must reach every exporter
                logger.warning("Feedback exporter %r raised on shutdown", exporter, exc_info=True)
        if self._spool is not None:
            self._spool.close()
        if self._dropped:
            logger.warning("%d feedback record(s) were dropped in all", self._dropped)


def _to_record(item: _Item) -> Feedback | None:
    if isinstance(item, Feedback):
        return item
    try:
        # Built here, off the application's thread.
        return item.to_feedback()
    except InvalidFeedbackError as exc:
        warn_once(
            f"malformed-event:{exc.field}",
            "Skipped a malformed %s event: %s",
            EVENT_NAME,
            exc,
        )
        return None
