"""Faults of the OTLP endpoint, through real sockets: no feedback lost, nothing blocks the app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from uuid import UUID

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    FeedbackExportResult,
    FeedbackSpanProcessor,
    OTLPFeedbackExporter,
    PhoenixFeedbackExporter,
    record_feedback,
)
from tests.otlp_receiver import OTLPReceiver, free_port


class App:
    """An application whose feedback goes over OTLP/HTTP to 127.0.0.1:port."""

    def __init__(self, port: int, **options: object) -> None:
        self.exporter = OTLPFeedbackExporter(
            endpoint=f"http://127.0.0.1:{port}/v1/logs",
            timeout=1,
            resource=Resource.create({"service.name": "faulty"}),
        )
        self.processor = FeedbackSpanProcessor(
            self.exporter,
            schedule_delay_millis=20,
            **options,  # type: ignore[arg-type]
        )
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.processor)
        self.sent: list[UUID] = []

    def record(self, count: int) -> None:
        tracer = self.provider.get_tracer("app")
        for i in range(count):
            with tracer.start_as_current_span(f"run {i}"):
                record = record_feedback("k", score=i)
            assert record is not None
            self.sent.append(record.id)


def _received(*receivers: OTLPReceiver) -> list[UUID]:
    return [UUID(log.attributes["otel_feedback.id"]) for r in receivers for log in r.logs()]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def app(port: int) -> Iterator[App]:
    made = App(port)
    yield made
    made.provider.shutdown()


def test_endpoint_down_at_start_then_up(app: App, port: int) -> None:
    app.record(5)
    assert not app.processor.force_flush(1_500)  # nothing listens yet
    assert app.processor.retrying_records == 5
    assert app.processor.dropped_records == 0
    with OTLPReceiver(http_port=port) as receiver:
        assert app.processor.force_flush(10_000)
        assert sorted(_received(receiver)) == sorted(app.sent)
    assert app.processor.retrying_records == 0


def test_endpoint_down_for_a_while_mid_run(app: App, port: int) -> None:
    first = OTLPReceiver(http_port=port).start()
    app.record(3)
    assert app.processor.force_flush(10_000)
    first.stop()
    app.record(4)
    assert not app.processor.force_flush(1_500)
    app.record(2)  # joins the backlog: the endpoint is not hammered while it is down
    with OTLPReceiver(http_port=port) as second:
        assert app.processor.force_flush(10_000)
        assert sorted(_received(first, second)) == sorted(app.sent)
    assert app.processor.dropped_records == 0


def test_503_until_the_endpoint_recovers(app: App, port: int) -> None:
    with OTLPReceiver(http_port=port) as receiver:
        receiver.faults = [503]
        app.record(3)
        assert not app.processor.force_flush(1_500)
        assert receiver.refused >= 1
        receiver.faults = []
        assert app.processor.force_flush(10_000)
        assert sorted(_received(receiver)) == sorted(app.sent)


def test_429_with_retry_after_is_honoured(app: App, port: int) -> None:
    with OTLPReceiver(http_port=port) as receiver:
        receiver.faults = [429, None]
        receiver.retry_after = "0"
        app.record(3)
        assert app.processor.force_flush(10_000)
        # Retried within the SDK exporter (newer SDKs), or by the engine (older ones,
        # with smaller batches after each refusal): either way nothing is lost.
        assert receiver.refused >= 1
        assert sorted(_received(receiver)) == sorted(app.sent)


def test_a_flapping_endpoint_loses_nothing(app: App, port: int) -> None:
    with OTLPReceiver(http_port=port) as receiver:
        receiver.faults = [503, None]
        for _ in range(4):
            app.record(3)
            app.processor.force_flush(10_000)
        assert app.processor.force_flush(10_000)
        assert sorted(set(_received(receiver))) == sorted(app.sent)
        assert app.processor.dropped_records == 0


def test_400_drops_the_batch_counts_it_and_logs_once(
    app: App, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    with OTLPReceiver(http_port=port) as receiver:
        receiver.faults = [400]
        app.record(2)
        app.processor.force_flush(10_000)
        app.record(3)
        app.processor.force_flush(10_000)
        assert app.processor.dropped_records == 5
        assert app.processor.retrying_records == 0
        receiver.faults = []
        app.record(1)
        assert app.processor.force_flush(10_000)
        assert _received(receiver) == app.sent[-1:]
    messages = [r.getMessage() for r in caplog.records if "Dropped" in r.getMessage()]
    # The first loss at once; the next three within the interval are summed up at shutdown.
    reason = "for OTLPFeedbackExporter: refused: the endpoint answered HTTP 400"
    assert messages == [f"Dropped 2 feedback record(s) {reason}"]
    app.provider.shutdown()
    messages = [r.getMessage() for r in caplog.records if "Dropped" in r.getMessage()]
    assert messages == [
        f"Dropped 2 feedback record(s) {reason}",
        f"Dropped 3 feedback record(s) {reason}",
    ]


def test_a_slow_endpoint_is_retried_and_nothing_is_lost(app: App, port: int) -> None:
    with OTLPReceiver(http_port=port) as receiver:
        receiver.delay_s = 2  # longer than the exporter's 1 s timeout
        app.record(3)
        assert not app.processor.force_flush(1_500)
        receiver.delay_s = 0
        assert app.processor.force_flush(15_000)
        received = _received(receiver)
        # At least once: the slow server may still take the request that timed out.
        assert set(received) == set(app.sent)


def test_the_app_never_waits_for_the_endpoint(app: App, port: int) -> None:
    with OTLPReceiver(http_port=port) as receiver:
        receiver.gate.clear()  # every request now hangs inside the endpoint
        app.record(1)
        flushed = threading.Thread(target=app.processor.force_flush, args=(30_000,))
        flushed.start()  # the worker is now stuck in an export
        app.record(200)  # would hang here if recording waited for the exporter
        assert len(app.sent) == 201
        receiver.gate.set()
        flushed.join()
        assert app.processor.force_flush(15_000)
        assert sorted(set(_received(receiver))) == sorted(app.sent)


def test_the_retry_backlog_is_bounded_and_counts_what_it_drops(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    app = App(port, max_queue_size=10, max_export_batch_size=5)
    try:
        for round_ in range(5):
            app.record(5)
            # The first try fails within the exporter's 1 s timeout: from then on the
            # endpoint is known to be down.
            app.processor.force_flush(2_500 if round_ == 0 else 1_000)
        assert app.processor.retrying_records == 10
        assert app.processor.dropped_records == 15
        with OTLPReceiver(http_port=port) as receiver:
            assert app.processor.force_flush(10_000)
            received = _received(receiver)
            # Ten are kept: the newest, but for the batch being tried when the bound was
            # passed (it is oldest, and stays until its try ends).
            assert len(received) == 10
            assert set(received) <= set(app.sent)
            assert set(app.sent[-5:]) <= set(received)
        full = [r for r in caplog.records if "backlog of 10 records is full" in r.getMessage()]
        assert len(full) == 1
    finally:
        app.provider.shutdown()


def test_the_sdk_exporter_alone_rides_out_a_five_second_outage(port: int) -> None:
    # What the SDK's own retry covers: with its default 10 s timeout, an export started while
    # the endpoint is down is retried after about 1, 3 and 7 s (backoff 1, 2, 4 s, +-20 %
    # jitter); the third retry lands after 5.6 s at the earliest, so a 5 s outage is ridden
    # out inside one export call. Longer ones fall to the processor's retry backlog.
    exporter = OTLPFeedbackExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/logs", resource=Resource.create({})
    )
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("one"):
        record = record_feedback("k", score=1)
    assert record is not None
    built = record.to_feedback()
    receiver = OTLPReceiver(http_port=port)
    comes_back = threading.Timer(5, receiver.start)  # the outage lasts 5 s
    comes_back.start()
    try:
        assert exporter.export([built]) is FeedbackExportResult.SUCCESS
        assert _received(receiver) == [record.id]
    finally:
        comes_back.join()
        receiver.stop()
        exporter.shutdown()


def test_drops_are_an_otel_metric(port: int) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    app = App(port, meter_provider=meters, max_queue_size=4, max_export_batch_size=2)
    try:
        for _ in range(3):
            app.record(4)
            app.processor.force_flush(1_000)
        with OTLPReceiver(http_port=port):
            assert app.processor.force_flush(10_000)
        data = reader.get_metrics_data()
        assert data is not None
        sums: dict[str, float] = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points = metric.data.data_points
                    sums[metric.name] = sum(float(getattr(p, "value", 0)) for p in points)
        assert sums["otel_feedback.records.dropped"] == app.processor.dropped_records == 8
        assert sums["otel_feedback.records.exported"] == 4
    finally:
        app.provider.shutdown()
        meters.shutdown()


def test_headers_and_secrets_never_reach_the_log(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Bearer s3cr3t-t0ken-do-not-log"
    exporter = OTLPFeedbackExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/logs",
        headers={"authorization": secret},
        timeout=1,
        resource=Resource.create({}),
    )
    phoenix = PhoenixFeedbackExporter(endpoint=f"http://127.0.0.1:{port}", api_key=secret)
    processor = FeedbackSpanProcessor(
        [exporter, phoenix], schedule_delay_millis=20, retry_for_millis=200
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        record_feedback("k", score=1)
    with OTLPReceiver(http_port=port) as receiver:
        receiver.faults = [401]
        processor.force_flush(2_000)
    provider.shutdown()
    assert caplog.records  # the failures were logged...
    assert "s3cr3t" not in caplog.text  # ...without it, tracebacks included
    assert "s3cr3t" not in repr(phoenix)
    assert "s3cr3t" not in repr(exporter)
