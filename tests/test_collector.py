"""Spans and feedback through a real OTLP collector (rotel) arrive exactly as sent.

Each application process sends everything twice: through rotel, and straight to a control
receiver. What came through rotel must be, record for record, what came straight: the same
protobuf span (ids, events, links, attributes, times) and the same log record (event name,
trace and span ids, attributes, body, times), and it must account for every span and feedback
record the application's in-memory exporters saw. The one field left out of the log-record
comparison is ``observed_time_unix_nano``: each of the application's two exporters stamps its
own copy when it encodes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otel_feedback import Feedback
from tests.collector import EVENT_NAME, LONG_COMMENT, REPO, Rotel, rotel_bin, rotel_version
from tests.otlp_receiver import OTLPReceiver, ReceivedLog, ReceivedSpan, attributes
from tests.server_process import installed

pytestmark = pytest.mark.collector

TRACES_PER_APPLICATION = 200  # 600 spans and 400 feedback log records each
DEADLINE_S = 60

StartRotel = Callable[..., Rotel]


@pytest.fixture(scope="module")
def rotel_agent() -> Path:
    executable = installed(rotel_bin(), "rotel (a real OTLP collector, pip install rotel)")
    assert rotel_version(executable).startswith("rotel ")
    return executable


@pytest.fixture
def start_rotel(rotel_agent: Path, tmp_path: Path) -> Iterator[StartRotel]:
    """Starts rotel in front of the given receivers; stops it (by its PID) after the test."""
    started: list[Rotel] = []

    def start(**routes: Any) -> Rotel:
        workdir = tmp_path / f"rotel-{len(started)}"
        workdir.mkdir()
        collector = Rotel(rotel_agent, workdir, **routes)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


@pytest.fixture
def control() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as started:
        yield started


def _endpoint(receiver: OTLPReceiver, protocol: str) -> str:
    return receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint


def _start_application(
    protocol: str, endpoints: Sequence[str], service: str, manifest: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.collector", "--protocol", protocol]
    for endpoint in endpoints:
        command += ["--endpoint", endpoint]
    command += ["--service", service, "--traces", str(TRACES_PER_APPLICATION)]
    command += ["--manifest", str(manifest)]
    return subprocess.Popen(command, cwd=REPO)


def _run_applications(applications: Sequence[subprocess.Popen[bytes]]) -> None:
    """Wait for each application to flush and exit 0; any left running is stopped by its PID."""
    try:
        for application in applications:
            assert application.wait(timeout=300) == 0
    finally:
        for application in applications:
            if application.poll() is None:
                application.kill()
                application.wait()


def _wait_for(receiver: OTLPReceiver, *, spans: int, logs: int) -> None:
    """Poll the receiver until ``spans`` spans and ``logs`` log records arrived (bounded)."""
    deadline = time.monotonic() + DEADLINE_S
    while len(receiver.spans()) < spans or len(receiver.logs()) < logs:
        if time.monotonic() > deadline:
            pytest.fail(
                f"after {DEADLINE_S}s: {len(receiver.spans())} of {spans} spans, "
                f"{len(receiver.logs())} of {logs} log records"
            )
        time.sleep(0.05)  # our receiver's threads are filled by rotel's exports


def _spans_by_id(spans: Sequence[ReceivedSpan]) -> dict[tuple[int, int], ReceivedSpan]:
    found = {(span.trace_id, span.span_id): span for span in spans}
    assert len(found) == len(spans), "a span arrived twice"
    return found


def _logs_by_feedback_id(logs: Sequence[ReceivedLog]) -> dict[UUID, ReceivedLog]:
    found = {log.feedback.id: log for log in logs}
    assert len(found) == len(logs), "a feedback log record arrived twice"
    return found


def _without_observed_time(record: LogRecord) -> LogRecord:
    copy = LogRecord()
    copy.CopyFrom(record)
    copy.ClearField("observed_time_unix_nano")
    return copy


def _check_spans(
    manifest: Mapping[str, Any],
    through: dict[tuple[int, int], ReceivedSpan],
    straight: dict[tuple[int, int], ReceivedSpan],
) -> None:
    for sent in manifest["spans"]:
        key = (sent["trace_id"], sent["span_id"])
        span, control = through.pop(key), straight.pop(key)
        assert span.span == control.span
        assert span.resource == control.resource
        assert span.resource["service.name"] == manifest["service"]
        assert span.span.name == sent["name"]
        assert [event.name for event in span.span.events] == sent["events"]
        links = [
            [int.from_bytes(x.trace_id, "big"), int.from_bytes(x.span_id, "big")]
            for x in span.span.links
        ]
        assert links == sent["links"]
        if sent["name"].startswith("feedback "):  # a carrier: one link, to the judged span
            assert len(links) == 1
        elif sent["name"] == "llm":  # the live feedback's span event
            assert sent["events"] == [EVENT_NAME]


def _check_logs(
    manifest: Mapping[str, Any],
    through: dict[UUID, ReceivedLog],
    straight: dict[UUID, ReceivedLog],
) -> None:
    for sent_json in manifest["feedback"]:
        sent = Feedback.model_validate(sent_json)
        log, control = through.pop(sent.id), straight.pop(sent.id)
        assert _without_observed_time(log.record) == _without_observed_time(control.record)
        assert log.resource == control.resource
        assert log.resource["service.name"] == manifest["service"]
        assert log.scope == control.scope == "otel_feedback"
        assert log.record.event_name == EVENT_NAME
        assert sent.trace_id is not None
        assert sent.run_id is not None
        assert (log.trace_id, log.span_id) == (sent.trace_id.int, sent.run_id.int)
        assert log.attributes == control.attributes
        # Lossless: the record rebuilt from the wire is, field for field, the one sent.
        assert log.feedback.model_dump() == sent.model_dump()


def _check_application(
    manifest_path: Path,
    through_spans: dict[tuple[int, int], ReceivedSpan],
    through_logs: dict[UUID, ReceivedLog],
    straight_spans: dict[tuple[int, int], ReceivedSpan],
    straight_logs: dict[UUID, ReceivedLog],
) -> None:
    manifest = json.loads(manifest_path.read_text())
    assert len(manifest["spans"]) == 3 * TRACES_PER_APPLICATION
    assert len(manifest["feedback"]) == 2 * TRACES_PER_APPLICATION
    carriers = [span for span in manifest["spans"] if span["links"]]
    assert len(carriers) == TRACES_PER_APPLICATION
    judged = {(span["trace_id"], span["span_id"]) for span in manifest["spans"]}
    assert all(tuple(carrier["links"][0]) in judged for carrier in carriers)
    long_ones = [sent for sent in manifest["feedback"] if sent["comment"] == LONG_COMMENT]
    assert len(long_ones) == 1
    long_log = through_logs[UUID(long_ones[0]["id"])]
    assert len(long_log.attributes["gen_ai.evaluation.explanation"]) == 36_000
    assert len(long_log.attributes["gen_ai.evaluation.explanation"].encode()) > 36_000 * 2
    judged_by_long = through_spans[long_log.trace_id, long_log.span_id]
    (event,) = judged_by_long.span.events
    assert attributes(event.attributes)["gen_ai.evaluation.explanation"] == LONG_COMMENT
    _check_spans(manifest, through_spans, straight_spans)
    _check_logs(manifest, through_logs, straight_logs)


@pytest.mark.parametrize(
    "protocols", [("http", "grpc"), ("grpc", "http")], ids=["http-in", "grpc-in"]
)
def test_spans_events_carriers_and_feedback_logs_pass_rotel_unchanged(
    start_rotel: StartRotel,
    receiver: OTLPReceiver,
    control: OTLPReceiver,
    tmp_path: Path,
    protocols: tuple[str, str],
) -> None:
    """One application into rotel over one protocol; rotel on to the backend over the other."""
    protocol_in, protocol_out = protocols
    collector = start_rotel(
        exporters={"backend": (_endpoint(receiver, protocol_out), protocol_out)},
        traces=["backend"],
        logs=["backend"],
    )
    manifest = tmp_path / "application.json"
    _run_applications(
        [
            _start_application(
                protocol_in,
                [collector.endpoint(protocol_in), _endpoint(control, protocol_in)],
                "shop",
                manifest,
            )
        ]
    )
    spans, logs = 3 * TRACES_PER_APPLICATION, 2 * TRACES_PER_APPLICATION
    _wait_for(receiver, spans=spans, logs=logs)
    _wait_for(control, spans=spans, logs=logs)

    assert {span.transport for span in receiver.spans()} == {protocol_out}
    assert {log.transport for log in receiver.logs()} == {protocol_out}
    through_spans, through_logs = (
        _spans_by_id(receiver.spans()),
        _logs_by_feedback_id(receiver.logs()),
    )
    straight_spans, straight_logs = (
        _spans_by_id(control.spans()),
        _logs_by_feedback_id(control.logs()),
    )
    _check_application(manifest, through_spans, through_logs, straight_spans, straight_logs)
    assert through_spans == straight_spans == {}  # nothing arrived that was not sent
    assert through_logs == straight_logs == {}


def test_two_applications_into_one_rotel_feedback_logs_to_their_own_backend(
    start_rotel: StartRotel, control: OTLPReceiver, tmp_path: Path
) -> None:
    """Two processes, one over HTTP and one over gRPC, into one rotel acting as a local agent.

    Rotel sends the traces to one backend and the log records (here, only feedback) to another:
    its per-signal exporters, ``--exporters-traces`` and ``--exporters-logs``.
    """
    with OTLPReceiver() as traces_backend, OTLPReceiver() as feedback_backend:
        collector = start_rotel(
            exporters={
                "traces": (traces_backend.grpc_endpoint, "grpc"),
                "feedback": (feedback_backend.http_endpoint, "http"),
            },
            traces=["traces"],
            logs=["feedback"],
        )
        manifests = [tmp_path / "checkout.json", tmp_path / "search.json"]
        _run_applications(
            [
                _start_application(
                    protocol,
                    [collector.endpoint(protocol), _endpoint(control, protocol)],
                    service,
                    manifest,
                )
                for protocol, service, manifest in zip(
                    ["http", "grpc"], ["checkout", "search"], manifests, strict=True
                )
            ]
        )
        spans, logs = 2 * 3 * TRACES_PER_APPLICATION, 2 * 2 * TRACES_PER_APPLICATION
        _wait_for(traces_backend, spans=spans, logs=0)
        _wait_for(feedback_backend, spans=0, logs=logs)
        _wait_for(control, spans=spans, logs=logs)

        assert traces_backend.logs() == []
        assert feedback_backend.spans() == []
        assert {span.transport for span in traces_backend.spans()} == {"grpc"}
        assert {log.transport for log in feedback_backend.logs()} == {"http"}
        through_spans = _spans_by_id(traces_backend.spans())
        through_logs = _logs_by_feedback_id(feedback_backend.logs())
        straight_spans = _spans_by_id(control.spans())
        straight_logs = _logs_by_feedback_id(control.logs())
    for manifest in manifests:
        _check_application(manifest, through_spans, through_logs, straight_spans, straight_logs)
    assert through_spans == straight_spans == {}
    assert through_logs == straight_logs == {}
