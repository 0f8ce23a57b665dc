"""FeedbackSpanProcessor: finds feedback on ending spans and hands it to the engine."""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otel_feedback import _environment as env
from otel_feedback._export.base import FeedbackExporter
from otel_feedback._export.engine import Engine, FeedbackExportStats
from otel_feedback._export.exits import ExitHook
from otel_feedback._export.spool import Spool, SpoolError
from otel_feedback._log import logger
from otel_feedback._model import Feedback
from otel_feedback._options import ProcessorOptions, processor_options
from otel_feedback._recording.handoff import FeedbackItem, feedback_of, register, unregister
from otel_feedback._recording.responses import note_response
from otel_feedback._recording.roots import note_root
from otel_feedback._sdk import processors_of_provider
from otel_feedback._upstream import UPSTREAM_SHARE, close_upstream, flush_upstream

__all__ = ["FeedbackSpanProcessor"]

# Read from a span, handed off by record_feedback, or sent again from the spool.
_Item = FeedbackItem | Feedback


class FeedbackSpanProcessor(SpanProcessor):
    """Exports the feedback recorded on each span when the span ends.

    ``on_end`` runs on the application's thread and only scans the span's events and queues
    what it finds. In the background, the records go to every exporter: each record on its
    own (one a writer cannot take is dropped alone), retried with backoff while an endpoint
    is down, kept on disk when a spool is set, and every loss counted with its reason in
    :meth:`stats`, :attr:`dropped_records` and the ``otel_feedback.records.dropped`` metric,
    and logged (rate-limited). Nothing raised in the background reaches the application.

    Every argument left out is read from the environment (``OTEL_PYTHON_FEEDBACK_*``, then
    ``OTEL_BLRP_*``), as the SDK's batch processors read theirs.

    Example::

        provider = TracerProvider()
        provider.add_span_processor(FeedbackSpanProcessor(JsonlFeedbackExporter("fb.jsonl")))

    Args:
        exporter: one exporter, or several that each receive every record.
        max_queue_size: records held in memory at most, in the queue and in each exporter's
            backlog (default 16384). When the queue is full and every endpoint takes
            batches (or a spool takes them), ``on_end`` waits for room, 0.1 s at most, before
            dropping.
        max_export_batch_size: records per ``export`` call at most (default 512).
        schedule_delay_millis: longest wait before a partial batch leaves (default 1000;
            with a spool, records are taken in at once).
        export_timeout_millis: how long ``force_flush`` and ``shutdown`` (and the exit of a
            process that never called it) wait at most, for everything (default 30000).
        retry_for_millis: how long records are held in memory for an endpoint that is down
            (default 300000); then they are dropped, or, with a spool, stay in it.
        meter_provider: where the ``otel_feedback.records.*`` counters go; default global.
        spool_path: an sqlite file that keeps every record until each exporter is done with
            it, across crashes and outages; ``""`` for none (default
            ``OTEL_PYTHON_FEEDBACK_SPOOL_PATH``, else none). Opened in the background.
        spool_max_records: rows the spool keeps at most (one per record and exporter);
            past it, records wait in memory (default 100000).
        spool_max_age_millis: age after which a spooled record is dropped (default
            604800000, 7 days).

    The defaults and the variables read for each option are one table,
    ``otel_feedback._options.PROCESSOR_OPTIONS``.

    Raises:
        ValueError: for a non-positive size or delay, or a batch larger than the queue.
    """

    def __init__(
        self,
        exporter: FeedbackExporter | Sequence[FeedbackExporter],
        *,
        max_queue_size: int | None = None,
        max_export_batch_size: int | None = None,
        schedule_delay_millis: float | None = None,
        export_timeout_millis: float | None = None,
        retry_for_millis: float | None = None,
        meter_provider: MeterProvider | None = None,
        spool_path: str | os.PathLike[str] | None = None,
        spool_max_records: int | None = None,
        spool_max_age_millis: float | None = None,
    ) -> None:
        exporters = _exporters(exporter)
        options = processor_options(
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
            schedule_delay_millis=schedule_delay_millis,
            export_timeout_millis=export_timeout_millis,
            retry_for_millis=retry_for_millis,
            spool_max_records=spool_max_records,
            spool_max_age_millis=spool_max_age_millis,
        )
        self._exporters = exporters
        self._timeout_s = options.export_timeout_millis / 1000
        self._exit_deadline: float | None = None
        self._is_shutdown = False
        self._engine: Engine[_Item] = Engine(
            exporters,
            to_record=_to_record,
            max_queue_size=options.max_queue_size,
            max_export_batch_size=options.max_export_batch_size,
            schedule_delay_s=options.schedule_delay_millis / 1000,
            retry_for_s=options.retry_for_millis / 1000,
            spool=_spool_opener(spool_path, options),
            meter_provider=meter_provider,
        )
        register(self)
        # Like the SDK's batch processors: a forked child starts afresh, with its own
        # threads, queue and backlogs, and without the parent's records.
        reinit = weakref.WeakMethod(self._at_fork_reinit)
        os.register_at_fork(after_in_child=lambda: (m := reinit()) and m())
        # A process that exits without shutdown() still sends what is queued.
        engine, timeout_s = self._engine, self._timeout_s
        self._exit_hook = ExitHook(self._at_exit, lambda: engine.shutdown(timeout_s))
        import multiprocessing  # noqa: PLC0415 - a light package, needed only here
        from multiprocessing import util  # noqa: PLC0415

        util.register_after_fork(self, FeedbackSpanProcessor._in_multiprocessing_child)
        if multiprocessing.parent_process() is not None:
            # Made inside a multiprocessing worker (spawn, forkserver, or a fork after which
            # the worker built its own): it ends with os._exit, past the atexit hooks.
            self._in_multiprocessing_child()

    @property
    def dropped_records(self) -> int:
        """Records lost so far, once per exporter that lost them; :meth:`stats` says why."""
        return self._engine.dropped

    @property
    def retrying_records(self) -> int:
        """Records held in memory (or being tried again) for an exporter whose endpoint is down."""
        return self._engine.retrying

    def stats(self) -> FeedbackExportStats:
        """What became of the records so far: exported, dropped (by reason), pending, spooled."""
        return self._engine.stats()

    def _submit(self, item: FeedbackItem) -> None:
        self._engine.put([item])  # after shutdown, it is counted as dropped there

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:  # noqa: ARG002
        """Note the span when it is its trace's root: feedback on the trace finds it open."""
        note_root(span)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the feedback of ``span``. Runs on the application's thread: scan, hand off.

        After shutdown, what it finds is counted as dropped rather than queued.
        """
        # Its root was noted as it started (on_start): once is enough.
        note_response(span)  # for feedback by ids later (gen_ai.response.id)
        items = feedback_of(span)
        if items:
            self._engine.put(items)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Deliver everything queued so far; ``True`` if it was delivered within the timeout.

        Records for an endpoint that is down are tried again at their backoff until they
        are delivered or the timeout passes. During the process's exit, an endpoint that is
        down is not waited for.
        """
        if self._is_shutdown:
            return True
        timeout_s = self._within_exit(
            timeout_millis / 1000 if timeout_millis is not None else self._timeout_s
        )
        start = time.monotonic()
        # Evaluations under way record their results first (as they end, on their threads).
        upstream = flush_upstream(timeout_s * UPSTREAM_SHARE)
        left_s = max(0.0, timeout_s - (time.monotonic() - start))
        done = self._engine.flush(left_s, wait_for_down=self._exit_deadline is None)
        left_ms = int(max(0.0, timeout_s - (time.monotonic() - start)) * 1000)
        flushed = [_flush(e, left_ms) for e in self._exporters]  # every one, no short cut
        return all(flushed) and done and upstream

    def shutdown(self) -> None:
        """Deliver what can be within the export timeout, then stop and shut exporters down.

        An exporter whose endpoint is down gets no further try. What is not delivered
        stays in the spool when there is one, and is otherwise counted and logged as dropped.
        """
        if self._is_shutdown:
            return
        timeout_s = self._within_exit(self._timeout_s)
        start = time.monotonic()
        # Evaluations under way record their results first, within a share of the time: an
        # evaluator that hangs must not cost the feedback already queued its delivery.
        flush_upstream(timeout_s * UPSTREAM_SHARE)
        # What the evaluations whose results only this processor takes have not done by now
        # would be recorded after it stopped: they stop too, and count it.
        close_upstream(self)
        self._is_shutdown = True
        unregister(self)
        self._exit_hook.release()
        self._engine.shutdown(max(0.0, timeout_s - (time.monotonic() - start)))

    def _within_exit(self, timeout_s: float) -> float:
        # At exit, every flush and the shutdown share one deadline.
        if self._exit_deadline is None:
            return timeout_s
        return max(0.0, min(timeout_s, self._exit_deadline - time.monotonic()))

    def _at_exit(self) -> None:
        if self._is_shutdown:
            return
        self._exit_deadline = time.monotonic() + self._timeout_s
        # Spans first, when this processor is on the global provider: exporters such as
        # Phoenix's place feedback on spans they have already seen. (atexit runs hooks
        # last-in first-out, so this hook runs before the provider's own.)
        # Evaluations under way first: their evaluator spans end, and the span processors
        # flushed next (added before this one) export them.
        flush_upstream(self._within_exit(self._timeout_s) * UPSTREAM_SHARE)
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider) and self in (
            processors_of_provider(provider) or ()
        ):
            provider.force_flush(int(self._within_exit(self._timeout_s) * 1000))
        self.shutdown()

    def _at_fork_reinit(self) -> None:
        self._engine.after_fork()

    def _in_multiprocessing_child(self) -> None:
        # A multiprocessing worker ends with os._exit, or SIGTERM from Pool.terminate.
        self._exit_hook.in_worker()


def _flush(exporter: FeedbackExporter, timeout_millis: int) -> bool:
    try:
        return exporter.force_flush(timeout_millis)
    except Exception as error:  # noqa: BLE001 - an exporter's bug must not reach the application
        logger.warning("%s raised in force_flush: %r", type(exporter).__name__, error)
        logger.debug("The error's traceback", exc_info=True)
        return False


def _exporters(exporter: object) -> tuple[FeedbackExporter, ...]:
    exporters: tuple[object, ...] = ()
    if isinstance(exporter, FeedbackExporter):
        exporters = (exporter,)
    elif isinstance(exporter, Sequence):
        exporters = tuple(exporter)
    if not exporters or not all(isinstance(e, FeedbackExporter) for e in exporters):
        raise ValueError("exporter: must be a FeedbackExporter or a non-empty sequence of them")
    return cast(tuple[FeedbackExporter, ...], exporters)


def _spool_opener(
    spool_path: str | os.PathLike[str] | None, options: ProcessorOptions
) -> tuple[str, Callable[[], Spool]] | None:
    """The spool's path and how to open it.

    The engine opens it off the application's thread: another process may hold its lock.
    """
    source = "spool_path"
    path = os.fspath(spool_path) if spool_path is not None else None
    if path is None:
        source, path = env.OTEL_PYTHON_FEEDBACK_SPOOL_PATH, env.spool_path()
    if not path:
        return None
    where = path

    def open_spool() -> Spool:
        try:
            return Spool(
                where,
                max_records=options.spool_max_records,
                max_age_s=options.spool_max_age_millis / 1000,
            )
        except SpoolError as error:
            raise SpoolError(f"{source}: cannot use the spool ({error})") from error

    return path, open_spool


def _to_record(item: _Item) -> Feedback:
    """The record of one queued item; raises InvalidFeedbackError for a malformed event."""
    if isinstance(item, Feedback):
        return item
    # Built here, off the application's thread.
    return item.to_feedback()
