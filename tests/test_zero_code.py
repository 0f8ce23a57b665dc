"""Zero-code setup: real opentelemetry-instrument subprocesses against the test receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.otlp_receiver import OTLPReceiver

APP = Path(__file__).parent.parent / "examples" / "zero_code_app.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


def run_instrumented(
    receiver: OTLPReceiver, protocol: str = "http/protobuf", **env: str
) -> subprocess.CompletedProcess[str]:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))
    }
    environment.update(
        OTEL_SERVICE_NAME="support-bot",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",  # the app's own logs: must not silence feedback
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    environment.update(env)
    return subprocess.run(
        [str(INSTRUMENT), sys.executable, str(APP)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_and_feedback_reach_the_same_endpoint(receiver: OTLPReceiver, protocol: str) -> None:
    done = run_instrumented(receiver, protocol)
    assert "Refunds are possible" in done.stdout
    spans = {(s.trace_id, s.span_id): s for s in receiver.spans()}
    names = {s.span.name for s in spans.values()}
    assert names == {"answer", "retrieve", "feedback user_rating"}
    logs = receiver.logs()
    assert sorted(log.attributes["gen_ai.evaluation.name"] for log in logs) == [
        "correctness",
        "retrieval_hit",
        "user_rating",
    ]
    judged = {"retrieval_hit": "retrieve", "correctness": "answer", "user_rating": "answer"}
    for log in logs:
        assert log.record.event_name == "gen_ai.evaluation.result"
        span = spans[(log.trace_id, log.span_id)]
        assert span.span.name == judged[log.attributes["gen_ai.evaluation.name"]]
        assert log.resource["service.name"] == "support-bot"
        assert log.resource["deployment.environment"] == "test"
        record = log.feedback
        assert record.run_id is not None
        assert record.run_id.int == span.span_id
    assert {log.transport for log in logs} == {"grpc" if protocol == "grpc" else "http"}


def test_disabled_instrumentation_exports_spans_but_no_feedback(receiver: OTLPReceiver) -> None:
    run_instrumented(receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="otel_feedback")
    assert {s.span.name for s in receiver.spans()} >= {"answer", "retrieve"}
    assert receiver.logs() == []


def test_sdk_disabled_leaves_the_app_unchanged(receiver: OTLPReceiver) -> None:
    done = run_instrumented(receiver, OTEL_SDK_DISABLED="true")
    assert "Refunds are possible" in done.stdout
    assert "otel_feedback" not in done.stderr
    assert receiver.spans() == []
    assert receiver.logs() == []


def test_a_bad_exporter_name_warns_once_and_uses_the_default(receiver: OTLPReceiver) -> None:
    done = run_instrumented(receiver, OTEL_PYTHON_FEEDBACK_EXPORTER="otlp,carrier-pigeon")
    assert done.stderr.count("OTEL_PYTHON_FEEDBACK_EXPORTER='otlp,carrier-pigeon'") == 1
    assert len(receiver.logs()) == 3


def test_several_exporters_from_the_environment(receiver: OTLPReceiver, tmp_path: Path) -> None:
    path = tmp_path / "fb.jsonl"
    done = run_instrumented(
        receiver,
        OTEL_PYTHON_FEEDBACK_EXPORTER="otlp,jsonl,console",
        OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(path),
    )
    assert len(receiver.logs()) == 3
    assert len(path.read_text().splitlines()) == 3
    assert done.stdout.count('"key": ') == 3


def test_declarative_configuration_file_enables_it(receiver: OTLPReceiver, tmp_path: Path) -> None:
    # Declarative configuration needs opentelemetry-configuration, which needs a recent SDK:
    # the run against the lowest supported versions has not got it.
    pytest.importorskip("opentelemetry.configuration")
    config = tmp_path / "otel.yaml"
    path = tmp_path / "from-config.jsonl"
    config.write_text(
        f"""
file_format: "1.0"
resource:
  attributes:
    - name: service.name
      value: from-config
tracer_provider:
  processors:
    - simple:
        exporter:
          otlp_http:
            endpoint: {receiver.http_endpoint}/v1/traces
instrumentation/development:
  python:
    otel_feedback:
      exporters: [jsonl]
"""
    )
    run_instrumented(
        receiver,
        OTEL_CONFIG_FILE=str(config),
        OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(path),
    )
    assert {s.resource["service.name"] for s in receiver.spans()} == {"from-config"}
    assert len(path.read_text().splitlines()) == 3
    assert receiver.logs() == []  # the file chose jsonl only
