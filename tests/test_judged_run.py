"""JudgedRun: an ended span read for an evaluator, online (from_span) and offline (OTLP/JSON).

The conventions' spans come from their real instrumentations where those install from PyPI
(OpenInference's and OpenTelemetry's OpenAI instrumentations, OpenLLMetry's), driving the real
``openai`` client against a loopback stand-in for the OpenAI API. Styles no installable release
writes any more are built by hand, each citing the source that writes it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import openai
import pytest
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_feedback._evaluation.conventions import MAX_PARSED_BYTES, RunContent, read_content
from otel_feedback._evaluation.judged import JudgedRun, RunEvent, run_kind
from otel_feedback._evaluation.otlp_json import InvalidSpanError, runs_of_otlp_json
from tests.openai_standin import OpenAIStandIn

QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
SYSTEM = "Answer in one sentence."
CHAT_INPUTS = {
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
}


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider(resource=Resource.create({"service.name": "judged-tests"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def ask(server: OpenAIStandIn) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
    with client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
            ],
        )
    assert reply.choices[0].message.content == ANSWER


def instrumented_span(
    module: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> ReadableSpan:
    """The one span ``module``'s OpenAIInstrumentor makes of one chat completion.

    Skipped where the instrumentation is not installed: against the lowest supported
    OpenTelemetry (.ci/lowest.txt), which it does not support.
    """
    instrumentor = pytest.importorskip(module).OpenAIInstrumentor()
    provider, exporter = spans
    instrumentor.instrument(tracer_provider=provider)
    try:
        with OpenAIStandIn(ANSWER) as server:
            ask(server)
    finally:
        instrumentor.uninstrument()
    return only_span(exporter)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def attributes_of(span: ReadableSpan) -> Mapping[str, Any]:
    assert span.attributes is not None
    return span.attributes


def otlp_json_of(*spans: ReadableSpan) -> dict[str, Any]:
    """The spans as a Collector's file exporter writes them: OTLP/JSON with hex ids.

    The SDK's protobuf message, turned to JSON by protobuf's own printer, writes bytes
    fields (the ids) as base64: the OTLP/JSON specification, and the Collector, write them
    as hex digits.
    """
    document: dict[str, Any] = MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    if field in span:
                        span[field] = base64.b64decode(span[field]).hex()
                for link in span.get("links", []):
                    for field in ("traceId", "spanId"):
                        link[field] = base64.b64decode(link[field]).hex()
    return document


def offline(span: ReadableSpan) -> JudgedRun:
    """The run ``otel-feedback evaluate`` reads from the span's line in a Collector's file."""
    # Through JSON text, as a file holds it.
    (run,) = runs_of_otlp_json(json.loads(json.dumps(otlp_json_of(span))))
    assert isinstance(run, JudgedRun)
    return run


def assert_same_offline(span: ReadableSpan) -> JudgedRun:
    online = JudgedRun.from_span(span)
    assert offline(span) == online
    return online


# --- the conventions, from their real instrumentations ------------------------------------


def test_genai_semconv_from_opentelemetry_instrumentation_openai_v2(
    spans: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.instrumentation import _semconv

    # How the instrumentation is told to write gen_ai.input.messages and
    # gen_ai.output.messages on its spans (its module docstring): the latest experimental
    # conventions and content captured on spans only.
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    # The opt-in is read once per process: make it read again now, and restore what the
    # other tests saw afterwards.
    stability = _semconv._OpenTelemetrySemanticConventionStability
    monkeypatch.setattr(stability, "_initialized", False)
    monkeypatch.setattr(stability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING", {})
    span = instrumented_span("opentelemetry.instrumentation.openai_v2", spans)
    assert isinstance(attributes_of(span)["gen_ai.input.messages"], str)

    run = assert_same_offline(span)
    assert run.convention == "gen_ai"
    assert run.kind == "llm"
    assert run.span_kind == "client"
    assert run.inputs == CHAT_INPUTS
    assert run.outputs == {
        "messages": [{"role": "assistant", "content": ANSWER, "finish_reason": "stop"}]
    }
    assert run.input_text == QUESTION
    assert run.output_text == ANSWER


def test_openinference_from_openinference_instrumentation_openai(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:

    span = instrumented_span("openinference.instrumentation.openai", spans)
    assert attributes_of(span)["llm.input_messages.1.message.content"] == QUESTION

    run = assert_same_offline(span)
    assert run.convention == "openinference"
    assert run.kind == "llm"
    assert run.status == "ok"
    assert run.scope == "openinference.instrumentation.openai"
    assert run.inputs == CHAT_INPUTS
    assert run.outputs == {"messages": [{"role": "assistant", "content": ANSWER}]}
    assert run.input_text == QUESTION
    assert run.output_text == ANSWER


def test_openinference_values_without_messages_read_the_json(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:

    span = instrumented_span("openinference.instrumentation.openai", spans)
    # The same span's input.value and output.value alone: the request and the completion.
    attributes = {
        key: value
        for key, value in attributes_of(span).items()
        if not key.startswith(("llm.input_messages.", "llm.output_messages."))
    }
    content = read_content(attributes)
    assert content.convention == "openinference"
    assert content.inputs["messages"][-1] == {"role": "user", "content": QUESTION}
    assert content.outputs["id"] == "chatcmpl-standin-0001"
    assert content.input_text == QUESTION
    assert content.output_text == ANSWER


# Its module declares a pydantic model with a class-based Config, which pydantic 2 warns
# about on import: not this package's code.
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
def test_openllmetry_from_opentelemetry_instrumentation_openai(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:

    span = instrumented_span("opentelemetry.instrumentation.openai", spans)
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name.startswith("opentelemetry.instrumentation.openai")

    run = assert_same_offline(span)
    # Its current releases write the GenAI semantic conventions' message attributes.
    assert run.convention == "gen_ai"
    assert run.kind == "llm"
    assert run.inputs == CHAT_INPUTS
    assert run.outputs == {
        "messages": [{"role": "assistant", "content": ANSWER, "finish_reason": "stop"}]
    }
    assert run.input_text == QUESTION
    assert run.output_text == ANSWER


# --- styles no installable release writes any more, by hand ------------------------------


def test_openllmetry_indexed_prompts_and_completions(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    # As opentelemetry-instrumentation-openai 0.47.0 writes them
    # (opentelemetry/instrumentation/openai/shared/chat_wrappers.py, _set_prompts and
    # _set_completions; the span starts with llm.request.type "chat"): content parts are
    # written as their JSON text. Its current release writes gen_ai.input.messages instead.
    provider, exporter = spans
    parts = [{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": "u"}}]
    with provider.get_tracer("opentelemetry.instrumentation.openai.v1").start_as_current_span(
        "openai.chat", kind=SpanKind.CLIENT, attributes={"llm.request.type": "chat"}
    ) as span:
        span.set_attribute("gen_ai.prompt.0.role", "system")
        span.set_attribute("gen_ai.prompt.0.content", SYSTEM)
        span.set_attribute("gen_ai.prompt.1.role", "user")
        span.set_attribute("gen_ai.prompt.1.content", json.dumps(parts))
        span.set_attribute("gen_ai.prompt.2.role", "user")
        span.set_attribute("gen_ai.prompt.2.content", QUESTION)
        span.set_attribute("gen_ai.completion.0.finish_reason", "stop")
        span.set_attribute("gen_ai.completion.0.role", "assistant")
        span.set_attribute("gen_ai.completion.0.content", ANSWER)
    run = assert_same_offline(only_span(exporter))
    assert run.convention == "openllmetry"
    assert run.kind == "llm"
    assert run.inputs == {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Look:", "parts": parts},
            {"role": "user", "content": QUESTION},
        ]
    }
    assert run.outputs == {
        "messages": [{"role": "assistant", "content": ANSWER, "finish_reason": "stop"}]
    }
    assert run.input_text == QUESTION
    assert run.output_text == ANSWER


def test_openllmetry_workflow_entity_input_and_output(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    # As traceloop-sdk 0.62.4's @workflow writes them (traceloop/sdk/decorators/base.py,
    # _handle_span_input and _handle_span_output): the call's {"args", "kwargs"} and the
    # returned value, each as JSON.
    provider, exporter = spans
    with provider.get_tracer("traceloop.tracer").start_as_current_span("answer.workflow") as span:
        span.set_attribute("traceloop.span.kind", "workflow")
        span.set_attribute("traceloop.entity.name", "answer")
        span.set_attribute("traceloop.entity.input", json.dumps({"args": [QUESTION], "kwargs": {}}))
        span.set_attribute("traceloop.entity.output", json.dumps(ANSWER))
    run = assert_same_offline(only_span(exporter))
    assert run.convention == "openllmetry"
    assert run.kind == "chain"
    assert run.inputs == {"args": [QUESTION], "kwargs": {}}
    assert run.outputs == {"output": ANSWER}
    assert run.input_text == QUESTION
    assert run.output_text == ANSWER


def test_genai_prompt_and_completion_events(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    # GenAI semantic conventions 1.26-1.27 (docs/gen-ai/gen-ai-spans.md, "Capturing inputs and
    # outputs"): span events gen_ai.content.prompt and gen_ai.content.completion, the
    # messages as JSON in gen_ai.prompt and gen_ai.completion.
    provider, exporter = spans
    with provider.get_tracer("legacy").start_as_current_span(
        "chat gpt-4o-mini", attributes={"gen_ai.operation.name": "chat"}
    ) as span:
        span.add_event(
            "gen_ai.content.prompt",
            {"gen_ai.prompt": json.dumps([{"role": "user", "content": QUESTION}])},
        )
        span.add_event(
            "gen_ai.content.completion",
            {"gen_ai.completion": json.dumps([{"role": "assistant", "content": ANSWER}])},
        )
    run = assert_same_offline(only_span(exporter))
    assert run.convention == "gen_ai"
    assert run.inputs == {"messages": [{"role": "user", "content": QUESTION}]}
    assert run.outputs == {"messages": [{"role": "assistant", "content": ANSWER}]}
    assert (run.input_text, run.output_text) == (QUESTION, ANSWER)


def test_genai_message_events() -> None:
    events = (
        RunEvent("gen_ai.system.message", None, {"content": SYSTEM}),
        RunEvent("gen_ai.user.message", None, {"content": QUESTION}),
        RunEvent("gen_ai.choice", None, {"message.content": ANSWER, "finish_reason": "stop"}),
    )
    content = read_content({"gen_ai.operation.name": "chat"}, events)
    assert content == RunContent(
        CHAT_INPUTS,
        {"messages": [{"role": "assistant", "content": ANSWER, "finish_reason": "stop"}]},
        QUESTION,
        ANSWER,
        "gen_ai",
    )


def test_genai_system_instructions_and_non_text_parts() -> None:
    tool_call = {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "P"}}
    attributes = {
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
        ),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [tool_call], "finish_reason": "tool_call"}]
        ),
    }
    content = read_content(attributes)
    assert content.inputs == CHAT_INPUTS
    assert content.outputs == {
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "parts": [tool_call],
                "finish_reason": "tool_call",
            }
        ]
    }
    assert content.output_text is None


def test_openinference_plain_text_values() -> None:
    content = read_content(
        {"openinference.span.kind": "CHAIN", "input.value": QUESTION, "output.value": ANSWER}
    )
    assert content == RunContent(
        {"input": QUESTION}, {"output": ANSWER}, QUESTION, ANSWER, "openinference"
    )


def test_openinference_multimodal_message_contents() -> None:
    attributes = {
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.contents.0.message_content.type": "text",
        "llm.input_messages.0.message.contents.0.message_content.text": QUESTION,
        "llm.input_messages.0.message.contents.1.message_content.type": "image",
    }
    content = read_content(attributes)
    assert content.input_text == QUESTION
    assert content.inputs["messages"][0]["parts"][1]["type"] == "image"


# --- never raises, stays bounded -----------------------------------------------------------


def test_malformed_json_is_read_as_text() -> None:
    content = read_content(
        {
            "input.value": "{not json",
            "input.mime_type": "application/json",
            "output.value": "[1, 2",
            "output.mime_type": "application/json",
        }
    )
    assert content == RunContent(
        {"input": "{not json"}, {"output": "[1, 2"}, "{not json", "[1, 2", "openinference"
    )


def test_a_value_over_the_limit_is_not_parsed() -> None:
    big = json.dumps({"question": "x" * MAX_PARSED_BYTES})
    content = read_content({"traceloop.entity.input": big})
    assert content.inputs == {"input": big}
    assert content.input_text == big
    # Below the limit, the same shape is parsed.
    small = json.dumps({"question": QUESTION})
    assert read_content({"traceloop.entity.input": small}).inputs == {"question": QUESTION}


def test_multibyte_text_is_measured_in_bytes() -> None:
    # Fewer characters than the limit, more UTF-8 bytes.
    text = json.dumps({"q": "é" * (MAX_PARSED_BYTES // 2 + 8)}, ensure_ascii=False)
    assert len(text) < MAX_PARSED_BYTES < len(text.encode())
    assert read_content({"traceloop.entity.input": text}).inputs == {"input": text}


def test_messages_that_are_no_messages_are_read_as_text() -> None:
    not_a_list = json.dumps({"role": "assistant"})
    content = read_content(
        {"gen_ai.input.messages": "[{oops", "gen_ai.output.messages": not_a_list}
    )
    assert content == RunContent(
        {"input": "[{oops"}, {"output": not_a_list}, "[{oops", not_a_list, "gen_ai"
    )
    big = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "x" * (1 << 20)}]}])
    assert read_content({"gen_ai.input.messages": big}).inputs == {"input": big}


def test_wrong_types_are_skipped() -> None:
    content = read_content({"gen_ai.input.messages": ("not", "json"), "gen_ai.output.messages": 3})
    assert content == RunContent()
    assert read_content({"input.value": 3, "output.value": True}) == RunContent(
        {"input": "3"}, {}, "3", None, "openinference"
    )


def test_nothing_readable() -> None:
    assert read_content({"http.method": "GET"}) == RunContent({}, {}, None, None, None)


attribute_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "[",
            "{}",
            "[{}]",
            '[{"role": 1, "parts": 2}]',
            '[{"role": "user", "parts": [{"type": "text"}]}]',
            '[{"role": "user", "parts": [null, 3, {"type": "text", "content": 4}]}]',
            '{"messages": [1, {"content": []}], "choices": [{"message": 2}]}',
            '{"args": [[[["deep"]]]]}',
            "[" * 5000,
        ]
    ),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.text(max_size=8), max_size=3).map(tuple),
    st.recursive(
        st.none() | st.text(max_size=8) | st.integers(),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=6,
    ),
)
attribute_keys = st.one_of(
    st.sampled_from(
        [
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.system_instructions",
            "input.value",
            "output.value",
            "input.mime_type",
            "output.mime_type",
            "traceloop.entity.input",
            "traceloop.entity.output",
            "openinference.span.kind",
            "gen_ai.operation.name",
        ]
    ),
    st.builds(
        "{}{}.{}".format,
        st.sampled_from(
            ["llm.input_messages.", "llm.output_messages.", "gen_ai.prompt.", "gen_ai.completion."]
        ),
        st.sampled_from(["0", "1", "x", "", "-1"]),
        st.sampled_from(
            ["role", "content", "message.role", "message.content", "", "finish_reason"]
        ),
    ),
    st.text(max_size=10),
)


@settings(max_examples=300, deadline=None)
@given(
    attributes=st.dictionaries(attribute_keys, attribute_values, max_size=8),
    event_names=st.lists(
        st.sampled_from(
            [
                "gen_ai.user.message",
                "gen_ai.choice",
                "gen_ai.content.prompt",
                "gen_ai.client.inference.operation.details",
                "exception",
            ]
        ),
        max_size=3,
    ),
)
def test_reading_never_raises(attributes: dict[str, Any], event_names: list[str]) -> None:
    events = tuple(RunEvent(name, None, attributes) for name in event_names)
    content = read_content(attributes, events)
    assert isinstance(content.inputs, dict)
    assert isinstance(content.outputs, dict)
    assert content.input_text is None or isinstance(content.input_text, str)
    assert content.output_text is None or isinstance(content.output_text, str)
    assert isinstance(run_kind(attributes), str)


# --- kind, status, error, times -----------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"openinference.span.kind": "RETRIEVER", "gen_ai.operation.name": "chat"}, "retriever"),
        ({"gen_ai.operation.name": "chat"}, "llm"),
        ({"gen_ai.operation.name": "text_completion"}, "llm"),
        ({"gen_ai.operation.name": "generate_content"}, "llm"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "create_agent"}, "agent"),
        ({"traceloop.span.kind": "workflow"}, "chain"),
        ({"traceloop.span.kind": "task"}, "chain"),
        ({"traceloop.span.kind": "agent"}, "agent"),
        ({"traceloop.span.kind": "tool"}, "tool"),
        ({"llm.request.type": "chat"}, "llm"),
        ({"gen_ai.operation.name": "something_new"}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_kind(attributes: dict[str, Any], kind: str) -> None:
    assert run_kind(attributes) == kind


def test_an_error_status_gives_its_description(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("tests", "1.0")
    with tracer.start_as_current_span("parent") as parent:
        span = tracer.start_span("child", kind=SpanKind.SERVER)
        span.record_exception(RuntimeError("first"))
        span.set_status(Status(StatusCode.ERROR, "the model timed out"))
        span.end()
    run = assert_same_offline(exporter.get_finished_spans()[0])
    assert run.status == "error"
    assert run.error == "the model timed out"
    assert run.span_kind == "server"
    assert run.parent_span_id == parent.get_span_context().span_id
    assert run.scope == "tests"
    assert run.resource["service.name"] == "judged-tests"
    assert run.events[0].name == "exception"
    assert run.events[0].attributes["exception.type"] == "RuntimeError"


def test_without_a_description_the_last_exception_gives_the_error(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    with provider.get_tracer("tests").start_as_current_span("root") as span:
        span.record_exception(RuntimeError("first"))
        span.record_exception(ValueError("second"))
    run = assert_same_offline(only_span(exporter))
    assert run.status == "unset"
    assert run.error == "second"
    assert run.parent_span_id is None


def test_the_fields_of_a_run(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    with provider.get_tracer("tests").start_as_current_span(
        "answer",
        start_time=1_700_000_000_123_456_789,
        attributes={
            "flag": True,
            "count": -(1 << 62),
            "ratio": 0.25,
            "tags": ("a", "b"),
            "numbers": (1, 2),
            "raw": b"\x00\xff",
        },
    ) as span:
        span.add_event("step", {"n": 1}, timestamp=1_700_000_000_500_000_000)
        span.set_status(Status(StatusCode.OK))
    ended = only_span(exporter)
    run = assert_same_offline(ended)
    context = ended.context
    assert context is not None
    assert (run.trace_id, run.span_id) == (context.trace_id, context.span_id)
    assert run.start_time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc)
    assert run.end_time is not None
    assert run.end_time.tzinfo is timezone.utc
    expected: dict[str, Any] = {
        "flag": True,
        "count": -(1 << 62),
        "ratio": 0.25,
        "tags": ("a", "b"),
        "numbers": (1, 2),
        "raw": b"\x00\xff",
    }
    assert ended.attributes is not None
    if "raw" not in ended.attributes:
        del expected["raw"]  # SDKs before bytes attribute values (1.41) drop it
    assert dict(run.attributes) == expected
    assert run.events == (
        RunEvent("step", datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=timezone.utc), {"n": 1}),
    )
    assert (run.status, run.error, run.kind, run.convention) == ("ok", None, "unknown", None)
    assert (run.inputs, run.outputs) == ({}, {})
    with pytest.raises(TypeError):
        run.attributes["flag"] = False  # type: ignore[index]


# --- OTLP/JSON as a Collector writes it ---------------------------------------------------

# One line of a Collector's file exporter (hex ids, int64 as strings, enums as integers).
COLLECTOR_LINE = json.dumps(
    {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "openinference.instrumentation.openai"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "ChatCompletion",
                                "kind": 1,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {
                                        "key": "openinference.span.kind",
                                        "value": {"stringValue": "LLM"},
                                    },
                                    {
                                        "key": "llm.input_messages.0.message.role",
                                        "value": {"stringValue": "user"},
                                    },
                                    {
                                        "key": "llm.input_messages.0.message.content",
                                        "value": {"stringValue": QUESTION},
                                    },
                                    {
                                        "key": "llm.output_messages.0.message.role",
                                        "value": {"stringValue": "assistant"},
                                    },
                                    {
                                        "key": "llm.output_messages.0.message.content",
                                        "value": {"stringValue": ANSWER},
                                    },
                                    {
                                        "key": "llm.token_count.total",
                                        "value": {"intValue": "19"},
                                    },
                                    {"key": "temperature", "value": {"doubleValue": 0.5}},
                                    {"key": "stream", "value": {"boolValue": False}},
                                    {
                                        "key": "stop",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"stringValue": "\n"}, {"intValue": 3}]
                                            }
                                        },
                                    },
                                    {"key": "blob", "value": {"bytesValue": "AP8="}},
                                    {
                                        "key": "meta",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "a", "value": {"stringValue": "b"}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": "1544712660500000000",
                                        "name": "exception",
                                        "attributes": [
                                            {
                                                "key": "exception.message",
                                                "value": {"stringValue": "rate limited"},
                                            }
                                        ],
                                    }
                                ],
                                "status": {"code": 2},
                            }
                        ],
                    }
                ],
            }
        ]
    }
)


def test_a_collector_line() -> None:
    (run,) = runs_of_otlp_json(json.loads(COLLECTOR_LINE))
    assert isinstance(run, JudgedRun)
    assert run.trace_id == 0x5B8EFFF798038103D269B633813FC60C
    assert run.span_id == 0xEEE19B7EC3C1B174
    assert run.parent_span_id == 0xEEE19B7EC3C1B173
    assert run.traceparent == "00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01"
    assert (run.name, run.kind, run.span_kind, run.scope) == (
        "ChatCompletion",
        "llm",
        "internal",
        "openinference.instrumentation.openai",
    )
    assert (run.status, run.error) == ("error", "rate limited")
    assert run.start_time == datetime(2018, 12, 13, 14, 51, 0, tzinfo=timezone.utc)
    assert run.end_time == datetime(2018, 12, 13, 14, 51, 1, tzinfo=timezone.utc)
    assert dict(run.resource) == {"service.name": "bot"}
    assert run.attributes["llm.token_count.total"] == 19
    assert run.attributes["temperature"] == 0.5
    assert run.attributes["stream"] is False
    assert run.attributes["stop"] == ("\n", 3)
    assert run.attributes["blob"] == b"\x00\xff"
    assert run.attributes["meta"] == {"a": "b"}
    assert run.events[0].time == datetime(2018, 12, 13, 14, 51, 0, 500000, tzinfo=timezone.utc)
    assert (run.input_text, run.output_text, run.convention) == (QUESTION, ANSWER, "openinference")


def test_enum_names_and_missing_optional_fields() -> None:
    document = json.loads(COLLECTOR_LINE)
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["kind"] = "SPAN_KIND_CLIENT"
    span["status"] = {"code": "STATUS_CODE_ERROR", "message": "boom"}
    del span["parentSpanId"], span["events"]
    (run,) = runs_of_otlp_json(document)
    assert isinstance(run, JudgedRun)
    assert (run.span_kind, run.status, run.error, run.parent_span_id) == (
        "client",
        "error",
        "boom",
        None,
    )
    span["kind"] = 0  # SPAN_KIND_UNSPECIFIED: taken as internal, as the specification allows
    del span["status"]
    (run,) = runs_of_otlp_json(document)
    assert isinstance(run, JudgedRun)
    assert (run.span_kind, run.status, run.error) == ("internal", "unset", None)


def bad_document() -> dict[str, Any]:
    good = json.loads(COLLECTOR_LINE)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]

    def span(**changes: Any) -> dict[str, Any]:
        return {**good, **changes}

    return {
        "resourceSpans": [
            {
                "resource": {},
                "scopeSpans": [
                    {"spans": [span(name="first")]},
                    {
                        "scope": {"name": "s"},
                        "spans": [
                            span(traceId="xyz"),
                            span(spanId=None),
                            span(parentSpanId="0000000000000000"),
                            span(name="last"),
                            span(kind="SPAN_KIND_SIDEWAYS"),
                            span(attributes=[{"key": "n", "value": {"intValue": "1.5"}}]),
                            span(attributes=[{"key": "n", "value": {"doubleValue": "fast"}}]),
                            span(attributes=[{"key": "n", "value": {"bytesValue": "!!"}}]),
                            span(attributes=[{"key": "n", "value": {"mapValue": {}}}]),
                            span(attributes=[{"key": 7, "value": {"stringValue": "x"}}]),
                            span(events=[{"name": "e", "timeUnixNano": "soon"}]),
                            span(status={"code": 9}),
                            span(startTimeUnixNano="-1"),
                            "not a span",
                        ],
                    },
                    {"scope": {"name": 5}, "spans": [span()]},
                ],
            },
            {"resource": {"attributes": {"service.name": "x"}}, "scopeSpans": [{}]},
        ]
    }


def test_each_malformed_span_is_named_and_the_others_are_read() -> None:
    results = list(runs_of_otlp_json(bad_document()))
    runs = [r.name for r in results if isinstance(r, JudgedRun)]
    errors = [str(r) for r in results if isinstance(r, InvalidSpanError)]
    assert runs == ["first", "last"]
    at = "resourceSpans[0].scopeSpans[1].spans"
    assert errors == [
        f"{at}[0].traceId: not 32 hex digits: 'xyz'",
        f"{at}[1].spanId: missing",
        f"{at}[2].parentSpanId: all zeros (an invalid id)",
        f"{at}[4].kind: not a known enum value: 'SPAN_KIND_SIDEWAYS'",
        f"{at}[5].attributes[0].value.intValue: not an integer: '1.5'",
        f"{at}[6].attributes[0].value.doubleValue: not a number: 'fast'",
        f"{at}[7].attributes[0].value.bytesValue: not base64",
        f"{at}[8].attributes[0].value.mapValue: not an AnyValue field",
        f"{at}[9].attributes[0].key: not a string: int",
        f"{at}[10].events[0].timeUnixNano: not an integer: 'soon'",
        f"{at}[11].status.code: not a known enum value: 9",
        f"{at}[12].startTimeUnixNano: out of range: -1",
        f"{at}[13]: not an object: str",
        "resourceSpans[0].scopeSpans[2].scope.name: not a string: int",
        "resourceSpans[1].resource.attributes: not a list: dict",
    ]
    assert all(isinstance(r, ValueError) for r in results if not isinstance(r, JudgedRun))


def test_a_document_that_is_not_otlp_gives_one_error() -> None:
    (error,) = runs_of_otlp_json({"resourceSpans": "none"})
    assert str(error) == "resourceSpans: not a list: str"
    (error,) = runs_of_otlp_json([])  # type: ignore[arg-type]
    assert str(error) == "(document): not a JSON object: list"
    assert list(runs_of_otlp_json({})) == []


OTLP_FIELD_NAMES = [
    *("resourceSpans", "scopeSpans", "spans", "attributes", "key", "value", "values"),
    *("stringValue", "intValue", "arrayValue", "kvlistValue", "traceId", "spanId"),
]


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(OTLP_FIELD_NAMES),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_gives_runs_or_invalid_span_errors(document: Any) -> None:
    results = list(runs_of_otlp_json(document))
    assert all(isinstance(r, JudgedRun | InvalidSpanError) for r in results)
