"""Delivery at its edges: the shutdown deadline, a full disk, a locked spool, Retry-After."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackExportStats,
    FeedbackSpanProcessor,
    PartialFeedbackExport,
    RetryLater,
    record_feedback,
)
from otel_feedback._export.base import ExportOutcome
from otel_feedback._export.delivery import backlog
from tests.disks import TinyDisk
from tests.otlp_receiver import OTLPReceiver


class Gate(FeedbackExporter):
    """Answers as told; with ``hold`` set, each export waits until ``release`` is set."""

    def __init__(self, answer: ExportOutcome = FeedbackExportResult.SUCCESS) -> None:
        self.answer = answer
        self.hold = False
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.delivered: list[str] = []

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        self.calls += 1
        self.entered.set()
        if self.hold:
            self.release.wait(30)
        if self.answer is FeedbackExportResult.SUCCESS:
            self.delivered += [str(r.id) for r in batch]
        return self.answer


def _record(processor: FeedbackSpanProcessor, count: int) -> None:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        for i in range(count):
            record_feedback("k", score=i)


def _wait_until(
    processor: FeedbackSpanProcessor, done: Callable[[FeedbackExportStats], bool]
) -> FeedbackExportStats:
    """Wait on the engine's own progress signal (no sleep) until ``done``, 30 s at most."""
    progress = processor._engine._progress
    for _ in range(3000):
        generation = progress.generation
        stats = processor.stats()
        if done(stats):
            return stats
        progress.wait_past(generation, 0.01)
    raise AssertionError(processor.stats())


def _settled(processor: FeedbackSpanProcessor) -> None:
    for route in processor._engine._routes:
        route._thread.join(30)
        assert not route._thread.is_alive()


@pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
def test_a_delivery_finishing_after_the_deadline_is_counted(tmp_path: Path, spool: bool) -> None:
    exporter = Gate()
    exporter.hold = True
    processor = FeedbackSpanProcessor(
        exporter,
        export_timeout_millis=100,
        schedule_delay_millis=1,
        spool_path=tmp_path / "spool.sqlite" if spool else "",
    )
    if spool:
        processor._engine._keeper.wait_opened(30)  # type: ignore[union-attr]
    _record(processor, 4)
    assert exporter.entered.wait(30)
    processor.shutdown()  # the export is still running when the deadline passes
    stats = processor.stats()
    assert stats.unaccounted() == {"Gate": 0}
    waiting = stats.spooled if spool else stats.pending
    assert waiting == {"Gate": 4}, stats
    exporter.release.set()
    _settled(processor)
    stats = processor.stats()
    assert stats.exported == {"Gate": 4}, stats
    assert stats.pending == stats.spooled == {"Gate": 0}
    assert stats.unaccounted() == {"Gate": 0}


def test_records_the_full_disk_refused_are_written_once_it_has_room(
    tiny_disk: TinyDisk, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backlog, "RETRY_WRITE_EVERY_S", 0.05)
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    path = tiny_disk.mount_point / "app" / "feedback.sqlite"
    down = Gate(FeedbackExportResult.RETRY)  # the endpoint is down throughout
    processor = FeedbackSpanProcessor(down, spool_path=path, schedule_delay_millis=1)
    processor._engine._keeper.wait_opened(30)  # type: ignore[union-attr]
    tiny_disk.fill()
    _record(processor, 400)
    intake = processor._engine._intake
    _wait_until(processor, lambda s: s.pending["Gate"] == 400 and intake.idle())
    assert "takes no more records" in caplog.text  # said once, with the records in memory
    tiny_disk.free()
    stats = _wait_until(processor, lambda s: s.spooled["Gate"] == 400)
    assert stats.pending == {"Gate": 0}
    assert stats.dropped == {"Gate": {}}
    processor.shutdown()
    stats = processor.stats()
    assert stats.dropped == {"Gate": {}}, stats  # nothing dropped at shutdown: all on disk
    assert stats.spooled == {"Gate": 400}
    # The next start delivers them.
    up = Gate()
    again = FeedbackSpanProcessor(up, spool_path=path, schedule_delay_millis=1)
    assert again.force_flush(30_000)
    assert again.stats().resumed == {"Gate": 400}
    assert len(set(up.delivered)) == 400
    again.shutdown()


def test_records_left_in_memory_at_shutdown_go_to_the_spool_once_it_has_room(
    tiny_disk: TinyDisk,
) -> None:
    path = tiny_disk.mount_point / "app" / "feedback.sqlite"
    processor = FeedbackSpanProcessor(
        Gate(FeedbackExportResult.RETRY), spool_path=path, schedule_delay_millis=1
    )
    processor._engine._keeper.wait_opened(30)  # type: ignore[union-attr]
    tiny_disk.fill()
    _record(processor, 500)
    intake = processor._engine._intake
    _wait_until(processor, lambda s: s.pending["Gate"] == 500 and intake.idle())
    tiny_disk.free()
    processor.shutdown()  # before any retry of the write: the shutdown writes them
    stats = processor.stats()
    assert stats.spooled == {"Gate": 500}, stats
    assert stats.dropped == {"Gate": {}}


HOLD_THE_SPOOL = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""


def test_a_locked_spool_does_not_hold_the_application(tmp_path: Path) -> None:
    path = tmp_path / "app" / "feedback.sqlite"
    exporter = Gate()
    first = FeedbackSpanProcessor(exporter, spool_path=path)
    first.shutdown()  # the spool exists, in WAL mode
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_SPOOL, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        processor = FeedbackSpanProcessor(exporter, spool_path=path, schedule_delay_millis=1)
        _record(processor, 10)
        # Built, recording and delivering while another process still holds the spool's lock.
        _wait_until(processor, lambda s: s.exported == {"Gate": 10})
        assert holder.poll() is None
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(30)
        assert holder.stdout is not None
        holder.stdout.close()
    assert processor.force_flush(30_000)
    assert len(exporter.delivered) == 10
    processor.shutdown()
    assert processor.stats().unaccounted() == {"Gate": 0}
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone() == (0,)
    connection.close()


@pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
def test_retry_after_sets_the_next_try(tmp_path: Path, spool: bool) -> None:
    exporter = Gate(RetryLater(after_s=30))
    processor = FeedbackSpanProcessor(
        exporter,
        schedule_delay_millis=1,
        export_timeout_millis=2000,
        spool_path=tmp_path / "spool.sqlite" if spool else "",
    )
    _record(processor, 3)
    # Two seconds of flushing: with the backoff alone (0.5 s, 1 s) it would have asked 3 times.
    assert not processor.force_flush(2000)
    assert exporter.calls == 1
    processor.shutdown()  # an endpoint that asked for 30 s gets no further try at shutdown
    assert exporter.calls == 1
    stats = processor.stats()
    assert stats.unaccounted() == {"Gate": 0}
    if spool:
        assert stats.spooled == {"Gate": 3}
    else:
        assert stats.dropped == {"Gate": {"unreachable at shutdown": 3}}


class Odd(FeedbackExporter):
    """Answers what the contract does not allow, or raises what is not an Exception."""

    def __init__(self) -> None:
        self.calls = 0
        self.delivered = 0

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        self.calls += 1
        if self.calls == 1:
            return PartialFeedbackExport(retry=None)  # type: ignore[arg-type]
        if self.calls == 2:
            return "done"  # type: ignore[return-value]
        if self.calls == 3:
            raise SystemExit(3)
        self.delivered += len(batch)
        return FeedbackExportResult.SUCCESS


def test_answers_outside_the_contract_are_counted_and_the_route_goes_on() -> None:
    exporter = Odd()
    processor = FeedbackSpanProcessor(exporter, schedule_delay_millis=1, max_export_batch_size=1)
    _record(processor, 4)
    assert processor.force_flush(30_000)
    stats = processor.stats()
    assert stats.exported == {"Odd": 1}
    assert stats.pending == {"Odd": 0}
    reasons = stats.dropped["Odd"]
    assert sum(reasons.values()) == 3
    assert any("not an outcome" in reason for reason in reasons)
    assert "refused: the exporter raised SystemExit" in reasons
    processor.shutdown()


EXIT_WITH_A_PROVIDER_OF_ITS_OWN = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

provider = TracerProvider()  # not the global one, and never shut down
provider.add_span_processor(FeedbackSpanProcessor(OTLPFeedbackExporter(endpoint=sys.argv[1])))
with provider.get_tracer("script").start_as_current_span("run"):
    for i in range(50):
        record_feedback("k", score=i)
"""


def test_a_script_ending_at_once_with_a_provider_of_its_own_delivers(
    receiver: OTLPReceiver,
) -> None:
    # Its records are first exported while the interpreter shuts down.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = str(Path(__file__).parent.parent)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            EXIT_WITH_A_PROVIDER_OF_ITS_OWN,
            receiver.http_endpoint + "/v1/logs",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Dropped" not in done.stderr
    assert len(receiver.logs()) == 50
