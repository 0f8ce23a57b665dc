"""The on-disk spool: records outlive a crash and a long outage, delivered at least once."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_feedback
from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    record_feedback,
)
from otel_feedback._export.delivery import backlog
from otel_feedback._export.spool import Spool
from tests.otlp_receiver import OTLPReceiver, free_port

APP = """
import os, sys
from opentelemetry.sdk.resources import Resource
import pytest
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

endpoint, spool, count, crash = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "crash"
provider = TracerProvider()
processor = FeedbackSpanProcessor(
    OTLPFeedbackExporter(endpoint=endpoint, timeout=1, resource=Resource.create({})),
    spool_path=spool,
    schedule_delay_millis=20,
)
provider.add_span_processor(processor)
with provider.get_tracer("app").start_as_current_span("run"):
    for i in range(count):
        print(record_feedback("k", score=i).id, flush=True)
delivered = processor.force_flush(3_000 if crash else 30_000)
if crash:
    os._exit(9)  # no atexit, no shutdown: a crash
provider.shutdown()
sys.exit(0 if delivered else 1)
"""


def _run(port: int, spool: Path, count: int, *, crash: bool) -> list[UUID]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            APP,
            f"http://127.0.0.1:{port}/v1/logs",
            str(spool),
            str(count),
            "crash" if crash else "ok",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == (9 if crash else 0), done.stderr[-2000:]
    return [UUID(line) for line in done.stdout.split()]


def _rows(spool: Path) -> int:
    with sqlite3.connect(spool) as connection:
        (count,) = connection.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone()
    return int(count)


def test_records_outlive_a_crash_during_an_outage(tmp_path: Path) -> None:
    spool, port = tmp_path / "feedback.sqlite", free_port()
    crashed = _run(port, spool, 20, crash=True)  # nothing listens: then the process dies
    assert _rows(spool) == 20
    with OTLPReceiver(http_port=port) as receiver:
        assert _run(port, spool, 0, crash=False) == []  # the next start sends them
        received = [UUID(log.attributes["otel_feedback.id"]) for log in receiver.logs()]
    assert sorted(set(received)) == sorted(crashed)
    assert _rows(spool) == 0


def test_delivered_records_leave_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "feedback.sqlite"
    with OTLPReceiver() as receiver:
        sent = _run(receiver.http_port, spool, 5, crash=False)
        assert sorted(UUID(x.attributes["otel_feedback.id"]) for x in receiver.logs()) == sorted(
            sent
        )
    assert _rows(spool) == 0


def test_records_wait_on_disk_for_every_exporter(tmp_path: Path) -> None:
    spool_file = tmp_path / "feedback.sqlite"
    memory = InMemoryFeedbackExporter()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(
        [memory, _Unreachable()], spool_path=spool_file, retry_for_millis=60_000
    )
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        record = record_feedback("k", score=1)
    assert record is not None
    built = record.to_feedback()
    assert not processor.force_flush(500)
    assert memory.get_finished_feedback() == (built,)
    assert _rows(spool_file) == 1  # one exporter still owes it
    provider.shutdown()
    stats = processor.stats()
    assert stats.exported == {"InMemoryFeedbackExporter": 1, "_Unreachable": 0}
    assert stats.dropped == {"InMemoryFeedbackExporter": {}, "_Unreachable": {}}
    assert stats.spooled == {"InMemoryFeedbackExporter": 0, "_Unreachable": 1}
    left = Spool(str(spool_file), max_records=10, max_age_s=60)
    assert left.take_over() == {"_Unreachable": 1}  # an earlier instance in this process
    rows, unreadable = left.oldest("_Unreachable", 10)
    assert [row.record for row in rows] == [built]
    assert unreadable == []


def test_the_spool_is_set_by_one_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_SPOOL_PATH", str(tmp_path / "env.sqlite"))
    provider = TracerProvider()
    processor = otel_feedback.configure(tracer_provider=provider, exporters=["console"])
    assert processor is not None
    with provider.get_tracer("t").start_as_current_span("run"):
        record_feedback("k", score=1)
    assert processor.force_flush()
    assert (tmp_path / "env.sqlite").exists()
    assert _rows(tmp_path / "env.sqlite") == 0  # written, then removed once delivered
    provider.shutdown()


class _Unreachable(FeedbackExporter):
    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        return FeedbackExportResult.RETRY


def test_the_judged_spans_attributes_survive_the_spool(tmp_path: Path) -> None:
    provider = TracerProvider()
    memory = InMemoryFeedbackExporter()
    provider.add_span_processor(FeedbackSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("generate") as span:
        span.set_attribute("gen_ai.response.id", "chatcmpl-9")
        record_feedback("k", score=1, comment='a "quoted" otel_feedback.run_attributes')
    with tracer.start_as_current_span("other"):
        record_feedback("plain", score=0, comment="otel_feedback.run_attributes")
    provider.shutdown()
    records = sorted(memory.get_finished_feedback(), key=lambda r: r.key)
    spool = Spool(str(tmp_path / "spool.sqlite"), max_records=10, max_age_s=60)
    assert spool.put(records, ["route"]) == 2
    read, unreadable = spool.oldest("route", 10)
    spool.close()
    assert unreadable == []
    back = sorted((row.record for row in read), key=lambda r: r.key)
    assert back == records
    assert [dict(r.run_attributes) for r in back] == [
        {"gen_ai.response.id": "chatcmpl-9", "gen_ai.evaluation.target": "generate"},
        {"gen_ai.evaluation.target": "other"},
    ]


def _record(provider: TracerProvider, count: int) -> list[UUID]:
    ids = []
    with provider.get_tracer("t").start_as_current_span("run"):
        for i in range(count):
            recorded = record_feedback("k", score=i)
            assert recorded is not None
            ids.append(recorded.id)
    return ids


def _delete(spool_file: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{spool_file}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_spool_file_deleted_while_in_use_keeps_its_records(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    spool_file = tmp_path / "feedback.sqlite"
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(_Flaky(), spool_path=spool_file)
    provider.add_span_processor(processor)
    before = _record(provider, 30)
    assert not processor.force_flush(300)
    assert _rows(spool_file) == 30
    _delete(spool_file)  # a temporary-file cleaner, or a hand
    if how == "replaced":
        Spool(str(spool_file), max_records=10, max_age_s=60).close()  # another process's
    after = _record(provider, 20)
    assert not processor.force_flush(300)
    provider.shutdown()
    assert "was deleted or replaced while in use" in caplog.text
    assert _rows(spool_file) == 50
    # The next start finds them all.
    exporter = _Flaky()
    exporter.up = True
    restarted = TracerProvider()
    again = FeedbackSpanProcessor(exporter, spool_path=spool_file)
    restarted.add_span_processor(again)
    assert again.force_flush(10_000)
    restarted.shutdown()
    assert sorted(exporter.delivered) == sorted(before + after)
    assert _rows(spool_file) == 0


def test_a_spool_that_cannot_be_made_again_warns_and_delivers_in_the_same_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = _Flaky()
    provider, processor, before = _recorded_then_directory_gone(tmp_path, exporter, 10)
    after = _record(provider, 10)
    assert not processor.force_flush(300)
    assert "no new file can be made there" in caplog.text
    exporter.up = True  # the endpoint is back: the records still in the deleted file go out
    assert processor.force_flush(10_000)
    provider.shutdown()
    assert sorted(exporter.delivered) == sorted(before + after)


def test_shutdown_says_when_records_are_lost_with_a_deleted_spool(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider, _, _ = _recorded_then_directory_gone(tmp_path, _Flaky(), 5)
    provider.shutdown()
    assert "5 feedback record(s) stay in the deleted spool" in caplog.text
    assert "for the next start" not in caplog.text


def _recorded_then_directory_gone(
    tmp_path: Path, exporter: FeedbackExporter, count: int
) -> tuple[TracerProvider, FeedbackSpanProcessor, list[UUID]]:
    """``count`` records spooled with ``exporter`` down, then the spool's directory deleted."""
    directory = tmp_path / "gone"
    directory.mkdir()
    spool_file = directory / "feedback.sqlite"
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, spool_path=spool_file)
    provider.add_span_processor(processor)
    made = _record(provider, count)
    assert not processor.force_flush(300)
    _delete(spool_file)
    directory.rmdir()
    return provider, processor, made


class _Flaky(FeedbackExporter):
    def __init__(self) -> None:
        self.up = False
        self.delivered: list[UUID] = []

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        if not self.up:
            return FeedbackExportResult.RETRY
        self.delivered += [r.id for r in batch]
        return FeedbackExportResult.SUCCESS


SHARED_APP = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, FeedbackExporter, FeedbackExportResult
from otel_feedback import record_feedback


class Down(FeedbackExporter):
    def export(self, batch):
        return FeedbackExportResult.RETRY


spool = sys.argv[1]
provider = TracerProvider(shutdown_on_exit=False)
processor = FeedbackSpanProcessor(Down(), spool_path=spool)
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")


def record(count):
    for i in range(count):
        with tracer.start_as_current_span("run"):
            print(record_feedback("k", score=i).id, flush=True)
    processor.force_flush(200)


record(20)
print("ready", flush=True)
sys.stdin.readline()  # the spool's file is deleted meanwhile
record(20)
provider.shutdown()
"""


def test_processes_sharing_a_deleted_spool_each_move_their_own_rows(tmp_path: Path) -> None:
    # `rm feedback.sqlite` leaves its -wal and -shm, which the processes still use: the new
    # file must not adopt them, or the processes that come second lose their rows.
    spool_file = tmp_path / "feedback.sqlite"
    apps = [
        subprocess.Popen(
            [sys.executable, "-c", SHARED_APP, str(spool_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    made: list[str] = []
    for app in apps:
        assert app.stdout is not None
        for line in app.stdout:
            if line.strip() == "ready":
                break
            made.append(line.strip())
    spool_file.unlink()  # the main file only
    for app in apps:
        out, _ = app.communicate("\n", timeout=60)
        assert app.returncode == 0
        made += out.split()
    assert len(made) == 120
    exporter = _Flaky()
    exporter.up = True
    # The records wait for an exporter of the same name: the next start sends them all.
    restarted = TracerProvider()
    again = FeedbackSpanProcessor(_Named(exporter), spool_path=spool_file)
    restarted.add_span_processor(again)
    assert again.force_flush(10_000)
    restarted.shutdown()
    assert sorted(str(i) for i in exporter.delivered) == sorted(made)


class _Named(FeedbackExporter):
    """Delivers through ``inner`` under the route name the shared app's exporter had."""

    def __init__(self, inner: FeedbackExporter) -> None:
        self.inner = inner

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        outcome = self.inner.export(batch)
        assert isinstance(outcome, FeedbackExportResult)
        return outcome


_Named.__name__ = _Named.__qualname__ = "Down"


def test_an_idle_process_notices_its_deleted_spool_within_its_upkeep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backlog, "UPKEEP_EVERY_S", 0.2)  # a minute, by default
    noticed = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "was deleted or replaced while in use" in record.getMessage():
                noticed.set()

    watch = Watch()
    logging.getLogger("otel_feedback").addHandler(watch)
    try:
        spool_file = tmp_path / "feedback.sqlite"
        provider = TracerProvider()
        processor = FeedbackSpanProcessor(_Flaky(), spool_path=spool_file)
        provider.add_span_processor(processor)
        _record(provider, 10)
        assert not processor.force_flush(300)
        _delete(spool_file)
        # No new record: the upkeep alone finds the file gone and writes a new one.
        assert noticed.wait(30)
        assert _rows(spool_file) == 10
        provider.shutdown()
    finally:
        logging.getLogger("otel_feedback").removeHandler(watch)


FORK_WITHOUT_SPOOL = """
import os, sys, shutil
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter, record_feedback

directory = sys.argv[1]
memory = InMemoryFeedbackExporter()
provider = TracerProvider(shutdown_on_exit=False)
processor = FeedbackSpanProcessor(memory, spool_path=os.path.join(directory, "s.sqlite"))
provider.add_span_processor(processor)
processor.force_flush(1_000)
shutil.rmtree(directory)  # the spool cannot be opened again
pid = os.fork()
if pid == 0:
    with provider.get_tracer("t").start_as_current_span("run"):
        record_feedback("child", score=1)
    delivered = processor.force_flush(10_000) and len(memory.get_finished_feedback()) == 1
    os._exit(0 if delivered else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_delivers_when_the_spool_cannot_be_reopened(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", FORK_WITHOUT_SPOOL, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "delivers without one" in done.stderr


def test_a_write_that_fails_half_way_writes_nothing(tmp_path: Path) -> None:
    # One transaction per write: a failure on the third row (a full disk, here a trigger)
    # leaves none of the batch, so that the engine's "not written" is true.
    path = tmp_path / "feedback.sqlite"
    spool = Spool(str(path), max_records=100, max_age_s=60)
    now = datetime.now(timezone.utc)
    batch = [Feedback(id=uuid4(), created_at=now, modified_at=now, key="k") for _ in range(5)]
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON otel_feedback_spool "
            f"WHEN NEW.id = '{batch[2].id}' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        spool.put(batch, ["route"])
    assert _rows(path) == 0
    assert spool.put(batch[:2], ["route"]) == 2
    assert _rows(path) == 2
    spool.close()


def test_delivered_records_whose_rows_cannot_be_deleted_are_not_sent_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A full disk can refuse even deletions: the records are delivered, their rows stay a
    # while. They are neither read back and sent again nor counted as waiting, and their
    # deletion is tried again.
    spool_file = tmp_path / "feedback.sqlite"
    exporter = _Flaky()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, spool_path=spool_file, retry_for_millis=50)
    provider.add_span_processor(processor)
    made = _record(provider, 10)
    assert not processor.force_flush(300)  # down past retry_for: the route reads the spool
    with sqlite3.connect(spool_file) as connection:
        connection.execute("CREATE TABLE disk_full (x)")
        connection.execute("INSERT INTO disk_full VALUES (1)")
        connection.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON otel_feedback_spool "
            "WHEN EXISTS (SELECT 1 FROM disk_full) BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    exporter.up = True
    assert processor.force_flush(10_000)
    assert sorted(exporter.delivered) == sorted(made)
    # Down again past retry_for: the route reads the spool from its start once more, where
    # the delivered records' rows still are. They are not sent a second time.
    exporter.up = False
    made += _record(provider, 1)
    assert not processor.force_flush(1_200)  # two tries, half a second apart
    exporter.up = True
    assert processor.force_flush(10_000)
    assert sorted(exporter.delivered) == sorted(made)
    stats = processor.stats()
    assert stats.exported == {"_Flaky": 11}
    assert stats.spooled == {"_Flaky": 0}
    assert _rows(spool_file) == 11
    assert "Could not delete delivered records" in caplog.text
    with sqlite3.connect(spool_file) as connection:
        connection.execute("DELETE FROM disk_full")
    more = _record(provider, 1)  # the intake tries the deletions again
    assert processor.force_flush(10_000)
    provider.shutdown()
    assert sorted(exporter.delivered) == sorted(made + more)
    assert _rows(spool_file) == 0
