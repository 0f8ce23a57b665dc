"""Feedback over OTLP, through real sockets, to the receiver of the tests."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from otel_feedback import (
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    OTLPFeedbackExporter,
    record_feedback,
)
from otel_feedback._export.otlp import _OnceHashedResource
from tests.otlp_receiver import OTLPReceiver

RESOURCE = Resource.create({"service.name": "shop", "deployment.environment": "test"})


def _record_through(
    exporter: OTLPFeedbackExporter, span_exporter: SpanExporter
) -> tuple[TracerProvider, InMemoryFeedbackExporter, FeedbackSpanProcessor]:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    memory = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor([exporter, memory])
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"):
        with tracer.start_as_current_span("child"):
            record_feedback("correctness", score=0, comment="wrong", correction={"a": 1})
        record_feedback("user_feedback", score=True, value="thumbs_up", user_id="u-1")
        record_feedback("rating", score=4.5, extra={"scale": [0, 5]})
    assert processor.force_flush(10_000)
    return provider, memory, processor


def _check_received(
    receiver: OTLPReceiver,
    memory: InMemoryFeedbackExporter,
    transport: str,
    service: str = "shop",
) -> None:
    sent = memory.get_finished_feedback()
    logs = receiver.logs()
    assert len(logs) == len(sent) == 3
    assert {log.transport for log in logs} == {transport}
    spans = {(s.trace_id, s.span_id): s for s in receiver.spans()}
    for log in logs:
        assert log.record.event_name == "gen_ai.evaluation.result"
        assert log.scope == "otel_feedback"
        assert log.resource["service.name"] == service
        span = spans[(log.trace_id, log.span_id)]  # each record points at a real span
        judged = "child" if log.attributes["gen_ai.evaluation.name"] == "correctness" else "root"
        assert span.span.name == judged
    # Lossless: the records rebuilt from what crossed the wire equal the ones sent.
    assert sorted((log.feedback for log in logs), key=str) == sorted(sent, key=str)


def test_feedback_and_spans_over_http_protobuf(receiver: OTLPReceiver) -> None:
    provider, memory, processor = _record_through(
        OTLPFeedbackExporter(endpoint=f"{receiver.http_endpoint}/v1/logs", resource=RESOURCE),
        HttpSpanExporter(endpoint=f"{receiver.http_endpoint}/v1/traces"),
    )
    _check_received(receiver, memory, "http")
    assert processor.dropped_records == 0
    provider.shutdown()


def test_feedback_and_spans_over_grpc(receiver: OTLPReceiver) -> None:
    provider, memory, processor = _record_through(
        OTLPFeedbackExporter(protocol="grpc", endpoint=receiver.grpc_endpoint, resource=RESOURCE),
        GrpcSpanExporter(endpoint=receiver.grpc_endpoint),
    )
    _check_received(receiver, memory, "grpc")
    assert processor.dropped_records == 0
    provider.shutdown()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_configured_by_the_standard_environment_variables(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    span_exporter: SpanExporter = GrpcSpanExporter() if protocol == "grpc" else HttpSpanExporter()
    provider, memory, _ = _record_through(OTLPFeedbackExporter(resource=RESOURCE), span_exporter)
    _check_received(receiver, memory, "grpc" if protocol == "grpc" else "http")
    provider.shutdown()


def test_logs_specific_variables_win(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing there
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", receiver.grpc_endpoint)
    provider, memory, _ = _record_through(
        OTLPFeedbackExporter(resource=RESOURCE), GrpcSpanExporter(endpoint=receiver.grpc_endpoint)
    )
    _check_received(receiver, memory, "grpc")
    provider.shutdown()


def test_an_unknown_protocol_variable_warns_and_uses_http(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "carrier-pigeon")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"{receiver.http_endpoint}/v1/logs")
    provider, memory, _ = _record_through(
        OTLPFeedbackExporter(resource=RESOURCE),
        HttpSpanExporter(endpoint=f"{receiver.http_endpoint}/v1/traces"),
    )
    _check_received(receiver, memory, "http")
    warned = [r.getMessage() for r in caplog.records if "carrier-pigeon" in r.getMessage()]
    assert len(warned) == 1
    assert "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL" in warned[0]
    provider.shutdown()


def test_an_unknown_protocol_argument_raises() -> None:
    with pytest.raises(ValueError, match="protocol: "):
        OTLPFeedbackExporter(protocol="http/json")


def test_records_carry_the_resource_of_the_environment_by_default(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No resource given and no SDK provider installed globally: the resource comes from
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, as the SDK builds its own.
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=search")
    exporter = OTLPFeedbackExporter(endpoint=f"{receiver.http_endpoint}/v1/logs")
    provider, memory, _ = _record_through(
        exporter, HttpSpanExporter(endpoint=f"{receiver.http_endpoint}/v1/traces")
    )
    _check_received(receiver, memory, "http", service="checkout")
    assert {log.resource["team"] for log in receiver.logs()} == {"search"}
    provider.shutdown()


def test_the_resource_hashed_once_equals_the_resource() -> None:
    resource = Resource.create({"service.name": "svc", "k": "v"})
    once = _OnceHashedResource(resource)
    assert once == resource
    assert hash(once) == hash(resource)
    assert {resource: 1}[once] == 1  # the SDK's encoder groups records by resource
