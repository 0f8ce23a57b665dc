"""current_run(): the current span as the handle a frontend gets, and back to feedback."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_feedback import (
    RecordedFeedback,
    current_run,
    record_feedback,
    record_feedback_from_token,
)
from tests.conftest import Pipeline

SECRET = "correct horse battery staple 42"


def test_the_handle_names_the_current_span(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("answer") as span:
        run = current_run()
    assert run is not None
    context = span.get_span_context()
    assert run.trace_id == uuid.UUID(int=context.trace_id)
    assert run.run_id == uuid.UUID(int=context.span_id)
    assert run.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    assert run.root_run_id == run.run_id  # the span is its trace's root
    assert json.loads(json.dumps(run.as_dict())) == {
        "trace_id": str(run.trace_id),
        "run_id": str(run.run_id),
        "traceparent": run.traceparent,
        "root_run_id": str(run.run_id),
    }


def test_the_handle_names_its_traces_root_when_this_process_has_it(pipeline: Pipeline) -> None:
    tracer = pipeline.tracer
    with tracer.start_as_current_span("answer") as root, tracer.start_as_current_span("step"):
        nested = current_run()
    assert nested is not None
    assert nested.root_run_id == uuid.UUID(int=root.get_span_context().span_id)
    assert nested.as_dict()["root_run_id"] == str(nested.root_run_id)
    # A trace continued from another process: its root is there, not here.
    upstream = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    with (
        trace.use_span(NonRecordingSpan(upstream)),
        tracer.start_as_current_span("handler"),
    ):
        continued = current_run()
    assert continued is not None
    assert continued.root_run_id is None
    assert "root_run_id" not in continued.as_dict()


def test_feedback_through_the_handle_lands_on_the_run(global_pipeline: Pipeline) -> None:
    with global_pipeline.tracer.start_as_current_span("answer"):
        run = current_run()
        assert run is not None
        token = run.feedback_token(key="user_rating", secret=SECRET)
    by_token = record_feedback_from_token(token, score=1, secret=SECRET)
    by_header = record_feedback("user_rating", score=0, traceparent=run.traceparent)
    assert by_token is not None
    assert by_header is not None
    for recorded in (by_token, by_header):
        assert (recorded.trace_id, recorded.run_id) == (run.trace_id, run.run_id)


def test_no_recording_span_gives_none() -> None:
    assert current_run() is None
    unsampled = NonRecordingSpan(SpanContext(7, 9, is_remote=False, trace_flags=TraceFlags(0)))
    with trace.use_span(unsampled):
        assert current_run() is None


def test_the_recorded_handle_reads_as_its_properties(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("answer"):
        on_run = record_feedback("k", score=1)
    on_trace = record_feedback("k", score=1, trace_id=0xABC)
    for recorded in (on_run, on_trace):
        assert recorded is not None
        assert repr(recorded) == (
            f"RecordedFeedback(key='k', id={recorded.id!r}, trace_id={recorded.trace_id!r}, "
            f"run_id={recorded.run_id!r})"
        )
    assert on_trace is not None
    assert "run_id=None" in repr(on_trace)


def test_a_recorded_handle_is_not_made_by_hand() -> None:
    with pytest.raises(TypeError, match="made by record_feedback"):
        RecordedFeedback()


def test_import_leaves_pydantic_and_the_exporters_for_later() -> None:
    probe = (
        "import sys, opentelemetry.sdk.trace\n"
        "import otel_feedback\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "with TracerProvider().get_tracer('t').start_as_current_span('s'):\n"
        "    otel_feedback.record_feedback('k', score=1, comment='c')\n"
        "    otel_feedback.current_run()\n"
        "heavy = ['pydantic', 'sqlite3', 'http.client', 'opentelemetry.instrumentation',\n"
        "         'opentelemetry.exporter.otlp.proto.http', 'otel_feedback._model']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "otel_feedback.FeedbackSpanProcessor, otel_feedback.Feedback\n"
        "print('pydantic' in sys.modules)\n"
    )
    lines = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert lines == ["[]", "True"]
