"""The ledger's balance, driven by a state machine over random exporter outcomes.

For every exporter, at every observation, whatever the exporters answer (success, retry,
retry later, refusal of some or all, an exception, a hang past the deadline), with or without
a spool, before and after shutdown::

    received + resumed == exported + dropped + pending + spooled
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    PartialFeedbackExport,
    RetryLater,
    record_feedback,
)
from otel_feedback._export.base import ExportOutcome

OUTCOMES = ("success", "retry", "retry later", "refuse", "refuse some", "raise", "hang")


class Scripted(FeedbackExporter):
    """Answers each export as the machine last told it; counts what it accepted."""

    def __init__(self) -> None:
        self.mode = "success"
        self.accepted: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        mode = self.mode
        if mode == "hang":
            self.release.wait(5)
            mode = "success"
        if mode == "raise":
            raise RuntimeError("a bug in the exporter")
        if mode == "retry":
            return FeedbackExportResult.RETRY
        if mode == "retry later":
            return RetryLater(after_s=0.05)
        if mode == "refuse":
            return FeedbackExportResult.FAILURE
        if mode == "refuse some":
            refused = [(r, "odd score") for r in batch if int(r.score or 0) % 2]
            retry = [r for r in batch if int(r.score or 0) % 3 == 0 and int(r.score or 0) % 2 == 0]
            taken = {id(r) for r, _ in refused} | {id(r) for r in retry}
            self._accept([r for r in batch if id(r) not in taken])
            return PartialFeedbackExport(retry=retry, refused=refused)
        self._accept(batch)
        return FeedbackExportResult.SUCCESS

    def _accept(self, records: Sequence[Feedback]) -> None:
        with self._lock:
            self.accepted += [str(r.id) for r in records]


class Delivery(RuleBasedStateMachine):
    """Records, exporter outcomes, flushes and a shutdown, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp())
        self.exporters = [Scripted(), Scripted()]
        self.processor: FeedbackSpanProcessor | None = None
        self.provider = TracerProvider()
        self.made = 0
        self.shut = False

    @initialize(spool=st.booleans(), queue=st.sampled_from([8, 64, 4096]))
    def start(self, spool: bool, queue: int) -> None:
        self.processor = FeedbackSpanProcessor(
            self.exporters,
            max_queue_size=queue,
            max_export_batch_size=min(queue, 16),
            schedule_delay_millis=5,
            export_timeout_millis=300,
            retry_for_millis=400,
            spool_path=str(self.directory / "spool.sqlite") if spool else "",
        )
        self.provider.add_span_processor(self.processor)

    @rule(count=st.integers(1, 40))
    def record(self, count: int) -> None:
        tracer = self.provider.get_tracer("machine")
        with tracer.start_as_current_span("run"):
            for _ in range(count):
                record_feedback("k", score=self.made)
                self.made += 1

    @rule(which=st.integers(0, 1), mode=st.sampled_from(OUTCOMES))
    def answer(self, which: int, mode: str) -> None:
        exporter = self.exporters[which]
        if exporter.mode == "hang" and mode != "hang":
            exporter.release.set()
        elif mode == "hang":
            exporter.release.clear()
        exporter.mode = mode

    @rule(timeout=st.sampled_from([0, 50, 200]))
    def flush(self, timeout: int) -> None:
        assert self.processor is not None
        done = self.processor.force_flush(timeout)
        if done and not self.shut:
            stats = self.processor.stats()
            assert all(n == 0 for n in stats.pending.values()), stats
            assert all(n == 0 for n in stats.spooled.values()), stats

    @precondition(lambda self: not self.shut)
    @rule()
    def shutdown(self) -> None:
        assert self.processor is not None
        self.processor.shutdown()
        self.shut = True

    @invariant()
    def balanced(self) -> None:
        if self.processor is None:
            return
        stats = self.processor.stats()
        assert stats.unaccounted() == dict.fromkeys(stats.exported, 0), stats
        for name in stats.exported:
            assert stats.pending[name] >= 0, stats
            assert stats.spooled[name] >= 0, stats
        assert stats.received == self.made, stats

    def teardown(self) -> None:
        for exporter in self.exporters:
            exporter.mode = "success"
            exporter.release.set()
        if self.processor is not None:
            self.processor.shutdown()
            for route in self.processor._engine._routes:
                route._thread.join(10)  # a late export settles, then the route's thread ends
                assert not route._thread.is_alive()
            stats = self.processor.stats()
            assert stats.unaccounted() == dict.fromkeys(stats.exported, 0), stats
            # What each exporter took, once each, is what the ledger says it delivered.
            for name, exporter in zip(stats.exported, self.exporters, strict=True):
                assert stats.exported[name] == len(exporter.accepted), (name, stats)
                assert len(set(exporter.accepted)) == len(exporter.accepted), name
        shutil.rmtree(self.directory, ignore_errors=True)


Delivery.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_ledger_balances_whatever_the_exporters_do = Delivery.TestCase
