"""The delivery engine against real faults: poison records, dead endpoints, SIGKILL, bad spools."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    JsonlFeedbackExporter,
    OTLPFeedbackExporter,
    PartialFeedbackExport,
    RecordedFeedback,
    record_feedback,
)
from otel_feedback._attributes import (
    ATTR_COMMENT,
    ATTR_ID,
    ATTR_KEY,
    ATTR_TRACE_ID,
    ATTR_VALUE,
    EVENT_NAME,
)
from otel_feedback._export.base import ExportOutcome
from tests.otlp_receiver import OTLPReceiver, free_port

REPO = Path(__file__).parent.parent

# An application: records COUNT feedback records, one per span, printing each id and the
# time its span ended; then flushes (or not) and exits (or is killed).
APP = """
import os, sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

endpoint, spool, count, rate, end = sys.argv[1:6]
count, rate = int(count), float(rate)
provider = TracerProvider(shutdown_on_exit=False)
processor = FeedbackSpanProcessor(
    OTLPFeedbackExporter(endpoint=endpoint, timeout=1, resource=Resource.create({})),
    spool_path=spool or None,
    schedule_delay_millis=50,
    max_queue_size=int(os.environ.get("QUEUE", "16384")),
)
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")
start = time.monotonic()
for i in range(count):
    with tracer.start_as_current_span("run"):
        record = record_feedback("k", score=i)
    print(record.id, time.time(), flush=True)
    pause = start + (i + 1) / rate - time.monotonic()
    if pause > 0:
        time.sleep(pause)  # the application's own pace
if end == "flush":
    ok = processor.force_flush(30_000)
    print("stats", processor.stats(), file=sys.stderr)
    processor.shutdown()
    sys.exit(0 if ok else 3)
if end == "wait":
    time.sleep(600)  # until killed
"""


def _id(record: RecordedFeedback | None) -> UUID:
    assert record is not None
    return record.id


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = str(REPO)
    environment.update(extra)
    return environment


def _app(
    port: int, spool: Path | None, count: int, *, rate: float = 1e9, end: str = "flush", **env: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            APP,
            f"http://127.0.0.1:{port}/v1/logs",
            str(spool or ""),
            str(count),
            str(rate),
            end,
        ],
        env=_environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[list[tuple[UUID, float]], str]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return _printed(out), err


def _printed(out: str) -> list[tuple[UUID, float]]:
    lines = [line.split() for line in out.splitlines() if line.strip()]
    return [(UUID(i), float(t)) for i, t in lines if len(i) == 36]


def _received(receiver: OTLPReceiver) -> set[UUID]:
    return {UUID(log.attributes["otel_feedback.id"]) for log in receiver.logs()}


def _rows(spool: Path) -> int:
    with sqlite3.connect(spool) as connection:
        (count,) = connection.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone()
    return int(count)


# -- one bad record never sinks the others ------------------------------------------------


def _poison_events() -> list[tuple[str, dict[str, Any], int | None]]:
    """Foreign feedback events that no exporter can carry, each with why."""
    return [
        ("40 hex digits", {ATTR_TRACE_ID: "ab" * 20}, None),
        ("nested too deep", {ATTR_VALUE: "[" * 5000 + "]" * 5000}, None),
        ("timestamp 1e22", {}, 10**22),
    ]


def _good_and_poison(provider: TracerProvider) -> list[UUID]:
    tracer = provider.get_tracer("t")
    good = []
    for i in range(20):
        with tracer.start_as_current_span("run") as span:
            good.append(_id(record_feedback("k", score=i)))
            if i % 7 == 0:
                for _, attributes, timestamp in _poison_events():
                    event = {"gen_ai.evaluation.name": "foreign", ATTR_ID: str(uuid4())}
                    event.update(attributes)
                    span.add_event(EVENT_NAME, event, timestamp=timestamp)
    return good


def test_poison_records_are_dropped_alone_and_counted(receiver: OTLPReceiver) -> None:
    exporter = OTLPFeedbackExporter(
        endpoint=f"{receiver.http_endpoint}/v1/logs", resource=Resource.create({})
    )
    processor = FeedbackSpanProcessor(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    good = _good_and_poison(provider)
    processor.force_flush()
    provider.shutdown()
    assert {UUID(log.attributes["otel_feedback.id"]) for log in receiver.logs()} == set(good)
    stats = processor.stats()
    assert stats.exported == {"OTLPFeedbackExporter": 20}
    assert sum(stats.dropped["OTLPFeedbackExporter"].values()) == 9  # 3 spans x 3 poisons
    assert stats.received == 29


def test_a_record_the_jsonl_writer_cannot_write_is_dropped_alone(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    processor = FeedbackSpanProcessor(JsonlFeedbackExporter(path))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("run") as span:
        good = [_id(record_feedback("k", score=i)) for i in range(5)]
        # A foreign event whose comment UTF-8 cannot encode (a lone surrogate).
        span.add_event(EVENT_NAME, {ATTR_KEY: "bad", ATTR_COMMENT: "\udc80"})
    assert processor.force_flush()
    written = [Feedback.model_validate_json(line).id for line in path.read_text().splitlines()]
    assert sorted(written) == sorted(good)
    (reasons,) = processor.stats().dropped.values()
    assert sum(reasons.values()) == 1
    provider.shutdown()


def test_losses_are_logged_every_time_not_once_per_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")

    class Refusing(FeedbackExporter):
        def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
            return PartialFeedbackExport(refused=[(r, f"refused {r.key}") for r in batch])

    for _ in range(2):  # two processors in one process: each one's first loss is logged
        processor = FeedbackSpanProcessor(Refusing())
        provider = TracerProvider()
        provider.add_span_processor(processor)
        with provider.get_tracer("t").start_as_current_span("run"):
            record_feedback("a", score=1)
            record_feedback("b", score=1)
        assert processor.force_flush()
        provider.shutdown()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Dropped")]
    assert sorted(lines) == sorted(
        [f"Dropped 1 feedback record(s) for Refusing: refused: refused {k}" for k in "abab"]
    )


# -- the invariant: recorded = exported + dropped + pending + spooled ---------------------

_OUTCOMES = st.sampled_from(["ok", "retry", "fail", "raise", "partial", "poison"])


class _Chaotic(FeedbackExporter):
    """Answers each call as the plan says; a record with key "poison" always raises."""

    def __init__(self, plan: list[str]) -> None:
        self.plan = plan
        self.calls = 0
        self.delivered: list[UUID] = []

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        if any(r.key == "poison" for r in batch):
            raise ValueError("cannot write a poison record")
        step = self.plan[self.calls % len(self.plan)]
        self.calls += 1
        if step == "retry":
            return FeedbackExportResult.RETRY
        if step == "fail":
            return FeedbackExportResult.FAILURE
        if step == "raise":
            raise RuntimeError("exporter bug")
        if step == "partial":
            half = len(batch) // 2
            self.delivered += [r.id for r in batch[half:]]
            return PartialFeedbackExport(retry=batch[:half])
        self.delivered += [r.id for r in batch]
        return FeedbackExportResult.SUCCESS


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(_OUTCOMES, min_size=1, max_size=6),
    keys=st.lists(st.sampled_from(["k", "k", "k", "poison"]), min_size=1, max_size=40),
    queue=st.integers(min_value=2, max_value=16),
    spooled=st.booleans(),
)
def test_every_record_is_accounted_for(
    tmp_path: Path, plan: list[str], keys: list[str], queue: int, spooled: bool
) -> None:
    spool = tmp_path / f"spool-{time.monotonic_ns()}.sqlite" if spooled else None
    exporter = _Chaotic(plan)
    processor = FeedbackSpanProcessor(
        exporter,
        max_queue_size=queue,
        max_export_batch_size=min(4, queue),
        schedule_delay_millis=5,
        retry_for_millis=50,
        export_timeout_millis=300,
        spool_path=str(spool) if spool else "",
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for key in keys:
        with tracer.start_as_current_span("run"):
            record_feedback(key, score=1)
        stats = processor.stats()
        assert stats.received <= len(keys)
    processor.force_flush(200)
    provider.shutdown()
    stats = processor.stats()
    (name,) = stats.exported
    dropped = sum(stats.dropped[name].values())
    assert stats.received == len(keys)
    assert len(exporter.delivered) == len(set(exporter.delivered))
    # A batch still with the exporter when the shutdown deadline passed (a loaded machine) is
    # not counted as exported: it stays in the spool, or is counted lost "still being sent".
    late = len(exporter.delivered) - stats.exported[name]
    in_flight = stats.dropped[name].get("still being sent at the deadline", 0)
    assert 0 <= late <= stats.spooled[name] + in_flight
    assert stats.exported[name] + dropped + stats.pending[name] + stats.spooled[name] == len(keys)
    assert stats.pending[name] == 0  # shutdown left nothing in memory uncounted
    if spool is None:
        assert stats.spooled[name] == 0


# -- the spool keeps its promise ------------------------------------------------------------


def test_sigkill_loses_no_record_whose_span_ended_200ms_before(tmp_path: Path) -> None:
    spool, port = tmp_path / "spool.sqlite", free_port()
    made: list[tuple[UUID, float]] = []
    for round_ in range(3):  # nothing listens: every record must wait on disk
        app = _app(port, spool, 100_000, rate=500, end="wait")
        assert app.stdout is not None
        lines = [app.stdout.readline()]  # the application is up: its first record
        started = time.monotonic()
        while time.monotonic() - started < 1.0 + 0.3 * round_:
            lines.append(app.stdout.readline())
        app.send_signal(signal.SIGKILL)
        killed_at = time.time()
        out, _ = app.communicate(timeout=30)
        printed = _printed("".join(lines) + out)
        made += [(i, t) for i, t in printed if t <= killed_at - 0.2]
    assert len(made) > 1000
    with OTLPReceiver(http_port=port) as receiver:
        _finish(_app(port, spool, 0))  # the next start sends them
        received = _received(receiver)
    lost = {i for i, _ in made} - received
    assert not lost, f"{len(lost)} of {len(made)} records lost"
    assert _rows(spool) == 0


def test_spooled_records_leave_once_the_endpoint_is_back_without_a_restart(
    tmp_path: Path,
) -> None:
    spool, port = tmp_path / "spool.sqlite", free_port()
    exporter = OTLPFeedbackExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/logs", timeout=1, resource=Resource.create({})
    )
    processor = FeedbackSpanProcessor(
        exporter,
        spool_path=spool,
        max_queue_size=500,
        schedule_delay_millis=20,
        retry_for_millis=300,
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    made = []
    for i in range(3000):  # more than the queue and the backlog hold: the rest waits on disk
        with tracer.start_as_current_span("run"):
            made.append(_id(record_feedback("k", score=i)))
    assert not processor.force_flush(1_000)
    assert processor.stats().spooled["OTLPFeedbackExporter"] == 3000
    with OTLPReceiver(http_port=port) as receiver:
        assert processor.force_flush(60_000)
        assert _received(receiver) == set(made)
    stats = processor.stats()
    assert stats.exported["OTLPFeedbackExporter"] >= 3000
    assert stats.dropped["OTLPFeedbackExporter"] == {}
    assert _rows(spool) == 0
    provider.shutdown()


def test_the_spool_bound_is_kept_and_what_passes_it_counted(tmp_path: Path) -> None:
    spool = tmp_path / "spool.sqlite"

    class Down(FeedbackExporter):
        def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
            return FeedbackExportResult.RETRY

    processor = FeedbackSpanProcessor(Down(), spool_path=spool, spool_max_records=10)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        for i in range(25):
            record_feedback("k", score=i)
    processor.force_flush(300)
    provider.shutdown()
    stats = processor.stats()
    # Ten fit on disk; the others waited in memory, and were lost with the endpoint down.
    assert stats.spooled == {"Down": 10}
    assert stats.dropped == {"Down": {"unreachable at shutdown": 15}}
    assert _rows(spool) == 10


def test_records_past_a_full_spool_are_not_written_after_they_left(tmp_path: Path) -> None:
    # Records the full spool could not take wait in memory, listed to be written once it has
    # room again. Those a route took and delivered by then must not be written: their rows
    # would be sent again, or stay behind for the next process to send.
    class Gated(FeedbackExporter):
        def __init__(self) -> None:
            self.sent: list[UUID] = []
            self.gate = threading.Event()

        def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
            self.gate.wait(30)  # held until the whole burst is recorded
            self.sent += [r.id for r in batch]
            return FeedbackExportResult.SUCCESS

    class Other(Gated):
        pass

    spool = tmp_path / "spool.sqlite"
    first, second = Gated(), Other()
    processor = FeedbackSpanProcessor(
        [first, second], spool_path=spool, spool_max_records=100, max_queue_size=5_000
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for i in range(1_000):
        with tracer.start_as_current_span("run"):
            record_feedback("k", score=i)
    first.gate.set()
    second.gate.set()
    assert processor.force_flush(60_000)
    # The spool has room again; the next record makes the intake write what it still lists.
    with tracer.start_as_current_span("run"):
        record_feedback("k", score=-1)
    assert processor.force_flush(60_000)
    stats = processor.stats()
    provider.shutdown()
    for exporter, name in ((first, "Gated"), (second, "Other")):
        assert len(exporter.sent) == len(set(exporter.sent)) == 1_001
        assert stats.exported[name] == 1_001
        assert stats.dropped[name] == {}
        assert stats.spooled[name] == 0
    assert _rows(spool) == 0


@pytest.mark.parametrize("kind", ["a file as directory", "directory", "garbage", "other table"])
def test_a_bad_spool_path_warns_once_and_the_app_runs_on(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    path = {
        "a file as directory": tmp_path / "a-file" / "spool.sqlite",
        "directory": tmp_path,
        "garbage": tmp_path / "garbage.sqlite",
        "other table": tmp_path / "other.sqlite",
    }[kind]
    if kind == "a file as directory":
        path.parent.write_text("")
    if kind == "garbage":
        path.write_bytes(os.urandom(4096))
    if kind == "other table":
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE otel_feedback_spool (id TEXT, record TEXT)")
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_SPOOL_PATH", str(path))
    memory = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(memory)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        record_feedback("k", score=1)
    assert processor.force_flush()
    assert len(memory.get_finished_feedback()) == 1
    provider.shutdown()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("OTEL_PYTHON_FEEDBACK_SPOOL_PATH: cannot use the spool (")
    assert str(path) in warning


def test_a_bad_spool_path_does_not_stop_auto_instrumentation(tmp_path: Path) -> None:
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    (tmp_path / "a-file").write_text("")  # where the spool's directory should be
    code = "from otel_feedback import record_feedback\nfrom opentelemetry import trace\n"
    code += "with trace.get_tracer('t').start_as_current_span('run'):\n"
    code += "    record_feedback('k', score=1)\nprint('ran')\n"
    done = subprocess.run(
        [str(instrument), sys.executable, "-c", code],
        env=_environment(
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_PYTHON_FEEDBACK_EXPORTER="jsonl",
            OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(tmp_path / "out.jsonl"),
            OTEL_PYTHON_FEEDBACK_SPOOL_PATH=str(tmp_path / "a-file" / "s.sqlite"),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran"
    assert "OTEL_PYTHON_FEEDBACK_SPOOL_PATH: cannot use the spool" in done.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 1


def test_two_processes_share_one_spool(tmp_path: Path) -> None:
    spool, port = tmp_path / "shared.sqlite", free_port()
    # Both run while the endpoint is down; then each exits, leaving its records on disk.
    made = []
    for app in [_app(port, spool, 300, rate=1000, end="exit") for _ in range(2)]:
        made += [i for i, _ in _finish(app)[0]]
    assert _rows(spool) == 600
    with OTLPReceiver(http_port=port) as receiver:
        apps = [_app(port, spool, 100, rate=1000) for _ in range(2)]
        made += [i for app in apps for i, _ in _finish(app)[0]]
        received = _received(receiver)
    assert set(made) <= received
    assert _rows(spool) == 0


# -- bursts, exit and trace-only backends ---------------------------------------------------


def test_a_burst_of_10000_then_a_normal_exit_delivers_all(receiver: OTLPReceiver) -> None:
    code = (
        "import otel_feedback\n"
        "from opentelemetry import trace\n"
        "otel_feedback.configure()\n"
        "tracer = trace.get_tracer('judge')\n"
        "for i in range(10_000):\n"
        "    with tracer.start_as_current_span('score'):\n"
        "        otel_feedback.record_feedback('correctness', score=i % 2)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_environment(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_received(receiver)) == 10_000
    assert "Dropped" not in done.stderr


@pytest.mark.parametrize("spooled", [False, True])
def test_exit_with_the_endpoint_down_accounts_for_every_record(
    tmp_path: Path, spooled: bool
) -> None:
    spool = tmp_path / "spool.sqlite" if spooled else None
    made, err = _finish(_app(free_port(), spool, 100, end="exit"))
    assert len(made) == 100
    if spooled:
        assert spool is not None
        assert _rows(spool) == 100
        assert "100 feedback record(s) wait in the spool" in err
    else:
        assert (
            "Dropped 100 feedback record(s) for OTLPFeedbackExporter: unreachable at shutdown"
            in err
        )


def test_a_trace_only_backend_is_named_once_and_counted(
    receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    receiver.faults = [405]
    exporter = OTLPFeedbackExporter(
        endpoint=f"{receiver.http_endpoint}/v1/logs", resource=Resource.create({})
    )
    processor = FeedbackSpanProcessor(exporter, max_export_batch_size=2)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        for i in range(5):
            record_feedback("k", score=i)
    assert processor.force_flush()
    (reasons,) = processor.stats().dropped.values()
    ((reason, count),) = reasons.items()
    assert count == 5
    assert "takes no OTLP logs (HTTP 405)" in reason
    assert "OTEL_PYTHON_FEEDBACK_EXPORTER=phoenix, mlflow or none" in reason
    named = [r for r in caplog.records if r.getMessage().startswith("OTLPFeedbackExporter:")]
    assert len(named) == 1
    provider.shutdown()


def test_a_processor_built_in_code_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE", "3")
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE", "2")
    batches: list[int] = []

    class Counting(InMemoryFeedbackExporter):
        def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
            batches.append(len(batch))
            return super().export(batch)

    processor = FeedbackSpanProcessor(Counting())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        for i in range(3):
            record_feedback("k", score=i)
    assert processor.force_flush()
    assert max(batches) == 2
    assert sum(batches) == 3
    provider.shutdown()
