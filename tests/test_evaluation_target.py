"""What log-only readers correlate and group on: the response id and the evaluation target.

``gen_ai.response.id`` goes with late feedback (by ids, ``traceparent`` or a SpanContext)
whenever the judged span ended in this process with one; ``gen_ai.evaluation.target`` and a
one-line body go on every log event, as pydantic-evals writes them for Logfire's live
evaluations.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanContext, TraceFlags

from otel_feedback import (
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    OTLPFeedbackExporter,
    record_feedback,
)
from otel_feedback._codec import evaluation_body
from otel_feedback._export.otlp import to_log_record
from otel_feedback._recording import responses
from tests.conftest import Pipeline, _reset_global_tracer_provider
from tests.otlp_receiver import OTLPReceiver, ReceivedLog, any_value

# The names and the body pydantic-evals writes on its gen_ai.evaluation.result log events,
# read from pydantic-evals 2.62.0, pydantic_evals/_otel_emit.py (_ATTR_TARGET, _EVENT_NAME,
# _format_result_body, _format_failure_body, _format_score); Logfire's guide
# (pydantic/logfire docs/guides/web-ui/live-evals.md) groups its live evaluations by
# gen_ai.evaluation.target, "the function or agent name".
PYDANTIC_EVALS_EVENT = "gen_ai.evaluation.result"
PYDANTIC_EVALS_TARGET = "gen_ai.evaluation.target"


def _pydantic_evals_body(name: str, value: object) -> str:
    """pydantic-evals' ``_format_result_body`` with its ``_format_score``, restated."""
    if isinstance(value, bool):
        shown = "True" if value else "False"
    elif isinstance(value, float):
        shown = format(value, "g")
    elif isinstance(value, str):
        shown = repr(value)
    else:
        shown = str(value)
    return f"evaluation: {name}={shown}"


@pytest.fixture
def otlp_app(receiver: OTLPReceiver) -> Iterator[tuple[trace.Tracer, FeedbackSpanProcessor]]:
    """The global provider: spans and feedback log events to the receiver over OTLP/HTTP."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.http_endpoint}/v1/traces"))
    )
    processor = FeedbackSpanProcessor(
        OTLPFeedbackExporter(endpoint=f"{receiver.http_endpoint}/v1/logs")
    )
    provider.add_span_processor(processor)
    _reset_global_tracer_provider()
    trace.set_tracer_provider(provider)
    yield provider.get_tracer("app"), processor
    provider.shutdown()
    _reset_global_tracer_provider()


def _logs_by_key(receiver: OTLPReceiver) -> dict[str, ReceivedLog]:
    return {log.attributes["gen_ai.evaluation.name"]: log for log in receiver.logs()}


def test_log_events_carry_the_target_and_body_logfire_groups_by(
    receiver: OTLPReceiver, otlp_app: tuple[trace.Tracer, FeedbackSpanProcessor]
) -> None:
    """Names and body as pydantic-evals writes them (``pydantic_evals/_otel_emit.py``)."""
    tracer, processor = otlp_app
    with tracer.start_as_current_span("answer_question"):
        record_feedback("correctness", score=1, comment="matches the reference")
        record_feedback("helpful", score=True)
        record_feedback("tone", value="polite")
        record_feedback("similarity", score=0.25)
    with tracer.start_as_current_span(
        "invoke_agent support", attributes={"gen_ai.agent.name": "support"}
    ):
        record_feedback("resolved", score=False)
    with tracer.start_as_current_span("chat", attributes={"gen_ai.response.id": "r-1"}) as judged:
        pass
    with tracer.start_as_current_span("request") as request:
        pass  # no correlation keys: not noted, so late feedback on it has no target
    record_feedback("unnoted", score=1, traceparent=_traceparent(request.get_span_context()))
    record_feedback("late", score=3, traceparent=_traceparent(judged.get_span_context()))
    assert processor.force_flush(10_000)

    logs = _logs_by_key(receiver)
    expected = {
        "correctness": ("answer_question", 1),
        "helpful": ("answer_question", True),
        "tone": ("answer_question", "polite"),
        "similarity": ("answer_question", 0.25),
        "resolved": ("support", False),  # the agent's name, as pydantic-evals' agents do
        "late": ("chat", 3),  # feedback after the run on a span that ended here
    }
    assert set(logs) == {*expected, "unnoted"}
    assert PYDANTIC_EVALS_TARGET not in logs["unnoted"].attributes
    assert any_value(logs["unnoted"].record.body) == "evaluation: unnoted=1"
    for key, (target, result) in expected.items():
        log = logs[key]
        assert log.record.event_name == PYDANTIC_EVALS_EVENT
        assert log.attributes[PYDANTIC_EVALS_TARGET] == target, key
        assert any_value(log.record.body) == _pydantic_evals_body(key, result)
    # The GenAI attributes stay as they were: a bool score is a double, a string a label.
    assert logs["helpful"].attributes["gen_ai.evaluation.score.value"] == 1.0
    assert "gen_ai.evaluation.score.label" not in logs["helpful"].attributes
    assert logs["tone"].attributes["gen_ai.evaluation.score.label"] == "polite"
    assert logs["correctness"].attributes["gen_ai.evaluation.explanation"] == (
        "matches the reference"
    )
    # Lossless still: the records rebuilt from the wire keep the target beside them.
    assert logs["late"].feedback.run_attributes == {
        "gen_ai.response.id": "r-1",
        PYDANTIC_EVALS_TARGET: "chat",
    }


def test_the_body_of_a_failed_evaluation_and_of_json_values() -> None:
    """pydantic-evals writes ``evaluation: <name> failed`` for an evaluator that raised."""
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s"):
        failed = record_feedback("k", score=0, error=True, comment="judge timed out")
        structured = record_feedback("k", value={"a": 1})
        long = record_feedback("k", value="x" * 500)
    assert failed is not None
    assert structured is not None
    assert long is not None
    assert evaluation_body(failed.to_feedback()) == "evaluation: k failed"
    assert evaluation_body(structured.to_feedback()) == "evaluation: k"
    body = evaluation_body(long.to_feedback())
    assert body.startswith("evaluation: k='xxx")
    assert len(body) < 120  # a summary: the attributes hold the whole value
    log = to_log_record(failed.to_feedback(), Resource.create({}))
    assert log.log_record.body == "evaluation: k failed"
    assert log.log_record.attributes is not None
    assert log.log_record.attributes["error.type"] == "_OTHER"


def _traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


@pytest.mark.parametrize("form", ["ids", "traceparent", "span_context"])
def test_late_feedback_carries_the_response_id_of_a_span_that_ended_here(
    global_pipeline: Pipeline, form: str
) -> None:
    with global_pipeline.tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attribute("gen_ai.response.id", "chatcmpl-7")
    context = span.get_span_context()
    reference = {
        "ids": {"trace_id": context.trace_id, "run_id": context.span_id},
        "traceparent": {"traceparent": _traceparent(context)},
        "span_context": {
            "span": SpanContext(context.trace_id, context.span_id, True, TraceFlags(1))
        },
    }[form]
    recorded = record_feedback("faithful", score=1, **reference)  # type: ignore[arg-type]
    assert recorded is not None
    global_pipeline.flush()
    (record,) = global_pipeline.feedback.get_finished_feedback()
    run = {"gen_ai.response.id": "chatcmpl-7", "gen_ai.evaluation.target": "chat gpt-4o"}
    assert record.run_attributes == run
    assert recorded.to_feedback().run_attributes == run
    (carrier,) = [
        s for s in global_pipeline.spans.get_finished_spans() if s.name == "feedback faithful"
    ]
    assert (carrier.events[0].attributes or {})["gen_ai.response.id"] == "chatcmpl-7"
    log = to_log_record(record, Resource.create({}))
    assert log.log_record.attributes is not None
    assert log.log_record.attributes["gen_ai.response.id"] == "chatcmpl-7"


def test_a_span_not_seen_here_gives_no_response_id(global_pipeline: Pipeline) -> None:
    record_feedback("faithful", score=1, trace_id=0xABC, run_id=0xDEF)
    global_pipeline.flush()
    (record,) = global_pipeline.feedback.get_finished_feedback()
    assert record.run_attributes == {}


def test_an_unsampled_reference_to_a_noted_span_carries_it_too(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("chat") as span:
        span.set_attribute("gen_ai.response.id", "chatcmpl-8")
    context = span.get_span_context()
    unsampled = f"00-{context.trace_id:032x}-{context.span_id:016x}-00"
    assert record_feedback("k", score=1, traceparent=unsampled) is not None
    pipeline.flush()
    (record,) = pipeline.feedback.get_finished_feedback()
    assert record.run_attributes["gen_ai.response.id"] == "chatcmpl-8"


def test_the_spans_remembered_are_bounded() -> None:
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(InMemoryFeedbackExporter())
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    first = None
    for number in range(2 * responses._MAX_SPANS + 10):
        with tracer.start_as_current_span("c", attributes={"gen_ai.response.id": f"r{number}"}):
            first = first or trace.get_current_span().get_span_context()
    assert len(responses._runs) <= 2 * responses._MAX_SPANS
    assert first is not None
    assert responses.noted_run(first.trace_id, first.span_id) is None
    provider.shutdown()


def test_only_spans_with_correlation_keys_are_noted() -> None:
    provider = TracerProvider()
    provider.add_span_processor(FeedbackSpanProcessor(InMemoryFeedbackExporter()))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("request") as root:
        with tracer.start_as_current_span("step") as step:
            pass
        with tracer.start_as_current_span("chat", attributes={"langsmith.span.id": "x"}) as chat:
            pass
    noted = {
        name: responses.noted_run(s.get_span_context().trace_id, s.get_span_context().span_id)
        for name, s in (("request", root), ("step", step), ("chat", chat))
    }
    assert noted == {
        "request": None,  # three dict look-ups, nothing kept
        "step": None,
        "chat": {"langsmith.span.id": "x", "gen_ai.evaluation.target": "chat"},
    }
    provider.shutdown()


def test_a_span_id_of_another_trace_is_not_taken() -> None:
    provider = TracerProvider()
    provider.add_span_processor(FeedbackSpanProcessor(InMemoryFeedbackExporter()))
    with provider.get_tracer("t").start_as_current_span("c") as span:
        span.set_attribute("gen_ai.response.id", "r")
    context = span.get_span_context()
    assert responses.noted_run(context.trace_id, context.span_id) is not None
    assert responses.noted_run(context.trace_id ^ 1, context.span_id) is None
    provider.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_trim_lock_is_held_can_trim() -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with responses._trimming:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: a lock of its own, free
            os._exit(0 if responses._trimming.acquire(timeout=5) else 1)
    finally:
        release.set()
        holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
