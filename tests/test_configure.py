from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import otel_feedback
from otel_feedback import (
    ConsoleFeedbackExporter,
    FeedbackInstrumentor,
    InMemoryFeedbackExporter,
    JsonlFeedbackExporter,
    OTLPFeedbackExporter,
    record_feedback,
)
from otel_feedback import _environment as env
from otel_feedback._options import ProcessorOptions, processor_options
from tests.otlp_receiver import OTLPReceiver


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider()
    yield made
    made.shutdown()


def test_configure_adds_one_processor_and_is_idempotent(provider: TracerProvider) -> None:
    memory = InMemoryFeedbackExporter()
    processor = otel_feedback.configure(tracer_provider=provider, exporters=[memory])
    assert processor is not None
    assert otel_feedback.configure(tracer_provider=provider, exporters=[memory]) is processor
    with provider.get_tracer("t").start_as_current_span("run"):
        record = record_feedback("k", score=1)
    processor.force_flush()
    assert record is not None
    built = record.to_feedback()
    assert memory.get_finished_feedback() == (built,)  # once, not twice


def test_exporter_names_build_their_exporters(
    provider: TracerProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_JSONL_PATH, str(tmp_path / "x.jsonl"))
    processor = otel_feedback.configure(
        tracer_provider=provider, exporters=["otlp", "console", "jsonl"]
    )
    assert processor is not None
    kinds = [type(e) for e in processor._exporters]
    assert kinds == [OTLPFeedbackExporter, ConsoleFeedbackExporter, JsonlFeedbackExporter]
    jsonl = processor._exporters[2]
    assert isinstance(jsonl, JsonlFeedbackExporter)
    assert jsonl.path == str(tmp_path / "x.jsonl")


def test_an_unknown_exporter_argument_raises(provider: TracerProvider) -> None:
    with pytest.raises(ValueError, match="exporters: unknown exporter 'kafka'"):
        otel_feedback.configure(tracer_provider=provider, exporters=["kafka"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("otlp",)),
        ("console", ("console",)),
        (" Console , JSONL ,console", ("console", "jsonl")),
        ("none", ()),
        ("console,none", ()),
        ("carrier-pigeon", ("otlp",)),
        ("jsonl,carrier-pigeon", ("jsonl",)),
    ],
)
def test_exporter_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EXPORTER, value)
    assert env.exporter_names() == expected


def test_exporter_none_sets_nothing_up(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EXPORTER, "none")
    assert otel_feedback.configure(tracer_provider=provider) is None


def test_processor_options_ours_then_blrp_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert processor_options() == ProcessorOptions()
    monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "10")
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE, "300")
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY, "5")
    monkeypatch.setenv("OTEL_BLRP_EXPORT_TIMEOUT", "700")
    assert processor_options() == ProcessorOptions(
        max_queue_size=300,
        max_export_batch_size=10,
        schedule_delay_millis=5,
        export_timeout_millis=700,
    )


@pytest.mark.parametrize("bad", ["many", "-1", "0", "1.5"])
def test_a_bad_size_warns_naming_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE, bad)
    assert processor_options().max_queue_size == ProcessorOptions().max_queue_size
    assert processor_options().max_queue_size == ProcessorOptions().max_queue_size
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1
    assert f"OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE={bad!r}" in warned[0]


def test_a_batch_larger_than_the_queue_is_clamped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE, "10")
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE, "50")
    options = processor_options()
    assert (options.max_queue_size, options.max_export_batch_size) == (10, 10)
    assert "OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE" in caplog.records[0].getMessage()


def test_sdk_disabled_makes_everything_a_silent_no_op(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="otel_feedback")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    disabled = TracerProvider()  # the SDK reads the variable here: its spans do not record
    assert otel_feedback.configure(tracer_provider=disabled) is None
    with disabled.get_tracer("t").start_as_current_span("run"):
        assert record_feedback("k", score=1) is None
        assert record_feedback("k", score=float("nan")) is None  # not even validated
    assert record_feedback("k", score=1, trace_id=1, run_id=2) is None
    assert record_feedback("k", score=1, traceparent="garbled") is None
    assert record_feedback("k", score=float("nan"), trace_id=1) is None
    assert caplog.records == []


def test_the_instrumentor_attaches_and_detaches(provider: TracerProvider) -> None:
    memory = InMemoryFeedbackExporter()
    instrumentor = FeedbackInstrumentor()
    instrumentor.instrument(tracer_provider=provider, exporters=[memory])
    try:
        assert instrumentor.is_instrumented_by_opentelemetry
        with provider.get_tracer("t").start_as_current_span("run"):
            record = record_feedback("k", score=1)
        provider.force_flush()
        assert record is not None
        built = record.to_feedback()
        assert memory.get_finished_feedback() == (built,)
    finally:
        instrumentor.uninstrument()
    with provider.get_tracer("t").start_as_current_span("run"):
        record_feedback("k", score=2)
    provider.force_flush()
    assert len(memory.get_finished_feedback()) == 1  # detached: nothing more exported


def test_the_instrumentor_skips_a_proxy_provider(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="otel_feedback")
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    instrumentor = FeedbackInstrumentor()
    instrumentor.instrument()
    try:
        assert any("No SDK TracerProvider" in r.getMessage() for r in caplog.records)
    finally:
        instrumentor.uninstrument()


def test_the_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (found,) = [
        e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "otel_feedback"
    ]
    assert found.load() is FeedbackInstrumentor


TWO_LINES = """
import otel_feedback
otel_feedback.configure()

from opentelemetry import trace
with trace.get_tracer("app").start_as_current_span("work"):
    otel_feedback.record_feedback("k", score=1)
"""


def test_two_line_setup_creates_the_provider_from_the_environment(receiver: OTLPReceiver) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    environment.update(
        OTEL_SERVICE_NAME="two-lines",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
    )
    subprocess.run([sys.executable, "-c", TWO_LINES], env=environment, check=True, timeout=60)
    (span,) = receiver.spans()
    (log,) = receiver.logs()
    assert span.resource["service.name"] == log.resource["service.name"] == "two-lines"
    assert (log.trace_id, log.span_id) == (span.trace_id, span.span_id)
