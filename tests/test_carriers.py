"""Carrier spans as OpenInference describes post-hoc feedback, and the judged span's keys.

OpenInference (``spec/annotations.md``): a carrier has ``openinference.span.kind =
EVALUATOR``, its result as ``evaluations.0.evaluation.*`` (``trace.``-prefixed for a whole
trace) and exactly one Span Link to its target. The judged span's ``gen_ai.response.id`` (and
LangSmith's ids) travel with every record about it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_feedback import (
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    OTLPFeedbackExporter,
    record_feedback,
)
from otel_feedback import _attributes as a
from otel_feedback._recording import roots
from tests.conftest import Pipeline, _reset_global_tracer_provider
from tests.otlp_receiver import OTLPReceiver

EVAL = "evaluations.0.evaluation."
TRACE_EVAL = "trace.evaluations.0.evaluation."


def _spans(pipeline: Pipeline) -> dict[str, ReadableSpan]:
    return {s.name: s for s in pipeline.spans.get_finished_spans()}


def _ended(pipeline: Pipeline, name: str = "answer", **attributes: str) -> ReadableSpan:
    with pipeline.tracer.start_as_current_span(name, attributes=attributes):
        pass
    return _spans(pipeline)[name]


def _ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def test_a_carrier_is_an_openinference_evaluator_linked_to_the_judged_span(
    global_pipeline: Pipeline,
) -> None:
    run = _ended(global_pipeline)
    recorded = record_feedback(
        "correctness",
        score=0.25,
        value="partly",
        comment="misses the refund window",
        feedback_source_type="model",
        source_info={"judge": "gpt-judge-2"},
        correction={"answer": "30 days"},
        span=run,
    )
    assert recorded is not None
    carrier = _spans(global_pipeline)["feedback correctness"]
    attributes = dict(carrier.attributes or {})
    assert attributes[a.ATTR_SPAN_KIND] == "EVALUATOR"
    assert attributes[EVAL + "name"] == "correctness"
    assert attributes[EVAL + "score"] == 0.25
    assert attributes[EVAL + "label"] == "partly"
    assert attributes[EVAL + "explanation"] == "misses the refund window"
    assert attributes[EVAL + "annotator_kind"] == "LLM"
    assert attributes[EVAL + "identifier"] == str(recorded.id)
    metadata = json.loads(str(attributes[EVAL + "metadata"]))
    # Keys without dots: Phoenix reads ``source.type`` as ``{"source": {"type": ...}}``.
    assert metadata == {
        "source_type": "model",
        "source_metadata": {"judge": "gpt-judge-2"},
        "correction": {"answer": "30 days"},
    }
    assert not any(name.startswith("trace.") for name in attributes)
    # Exactly one link, to the judged span; the parent is the same span, for trace views.
    assert [_ids_of_link(link) for link in carrier.links] == [_ids(run)]
    assert carrier.parent is not None
    assert (carrier.parent.trace_id, carrier.parent.span_id) == _ids(run)
    # The judged span is this process's own: not marked remote, and its trace flags kept.
    assert carrier.parent.is_remote is False
    assert run.context is not None
    assert carrier.context is not None
    assert carrier.context.trace_flags == run.context.trace_flags


def test_a_run_known_by_its_ids_is_a_remote_parent(global_pipeline: Pipeline) -> None:
    record_feedback("k", score=1, trace_id=0xAB, run_id=0xCD)
    carrier = _spans(global_pipeline)["feedback k"]
    assert carrier.parent is not None
    assert carrier.parent.is_remote is True


def _ids_of_link(link: trace.Link) -> tuple[int, int]:
    return link.context.trace_id, link.context.span_id


@pytest.mark.parametrize(
    ("source", "kind", "score", "sent"),
    [("app", "HUMAN", True, 1), ("api", "CODE", 3, 3), ("user", "HUMAN", False, 0)],
)
def test_scores_stay_numbers_and_sources_become_annotator_kinds(
    global_pipeline: Pipeline, source: str, kind: str, score: bool | int, sent: int
) -> None:
    run = _ended(global_pipeline)
    record_feedback("rating", score=score, feedback_source_type=source, span=run)
    attributes = _spans(global_pipeline)["feedback rating"].attributes or {}
    assert attributes[EVAL + "annotator_kind"] == kind
    assert attributes[EVAL + "score"] == sent
    assert type(attributes[EVAL + "score"]) is int
    assert EVAL + "label" not in attributes
    assert EVAL + "explanation" not in attributes


def test_a_record_with_no_score_label_or_comment_has_no_result(global_pipeline: Pipeline) -> None:
    run = _ended(global_pipeline)
    record_feedback("fix", correction={"answer": "42"}, span=run)
    carrier = _spans(global_pipeline)["feedback fix"]
    attributes = carrier.attributes or {}
    # The spec wants name plus score, label or explanation: none here, so no result at all.
    assert not any(name.startswith("evaluations.") for name in attributes)
    assert attributes[a.ATTR_SPAN_KIND] == "EVALUATOR"
    global_pipeline.flush()
    (record,) = global_pipeline.feedback.get_finished_feedback()
    assert record.correction == {"answer": "42"}


@pytest.fixture
def short_values() -> Iterator[Pipeline]:
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=20))
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    feedback = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(feedback)
    provider.add_span_processor(processor)
    _reset_global_tracer_provider()
    trace.set_tracer_provider(provider)
    yield Pipeline(provider, provider.get_tracer("t"), processor, feedback, spans)
    provider.shutdown()
    _reset_global_tracer_provider()


def test_carriers_never_pass_for_the_root_of_their_trace(global_pipeline: Pipeline) -> None:
    # A judge that has only the ids: the span-level carrier has a remote parent, and the
    # trace-level one made next must not take it for the trace's first span here.
    trace_id, span_id = 0xABCDEF, 0x123
    record_feedback("on_span", score=1, trace_id=trace_id, run_id=span_id)
    record_feedback("on_trace", score=1, trace_id=trace_id)
    on_trace = _spans(global_pipeline)["feedback on_trace"]
    assert on_trace.parent is None
    assert on_trace.links == ()
    # Trace feedback while the root is still open, then again once it has ended: the second
    # links the real root, not the first one's carrier.
    tracer = global_pipeline.tracer

    def from_another_thread(trace_id: int) -> None:
        record_feedback("mid_run", score=1, trace_id=trace_id)

    with tracer.start_as_current_span("root") as root:
        trace_of_root = root.get_span_context().trace_id
        judge = threading.Thread(target=from_another_thread, args=(trace_of_root,))
        judge.start()
        judge.join()
    record_feedback("after_end", score=1, trace_id=trace_of_root)
    after_end = _spans(global_pipeline)["feedback after_end"]
    assert [_ids_of_link(link) for link in after_end.links] == [
        _ids(_spans(global_pipeline)["root"])
    ]


@pytest.mark.parametrize(
    ("limits", "kept"),
    [
        (SpanLimits(max_span_attribute_length=20), False),
        (SpanLimits(max_attribute_length=20, max_span_attribute_length=1_000), True),
    ],
)
def test_the_span_attribute_length_limit_is_the_one_that_decides(
    limits: SpanLimits, kept: bool
) -> None:
    provider = TracerProvider(span_limits=limits)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    provider.add_span_processor(FeedbackSpanProcessor(InMemoryFeedbackExporter()))
    _reset_global_tracer_provider()
    trace.set_tracer_provider(provider)
    try:
        judged = SpanContext(0xAB, 0xCD, True, TraceFlags(1))
        record_feedback("k", score=1, comment="an explanation of thirty-five chars", span=judged)
        (carrier,) = spans.get_finished_spans()
        attributes = carrier.attributes or {}
        assert (EVAL + "explanation" in attributes) is kept
        if kept:
            assert attributes[EVAL + "explanation"] == "an explanation of thirty-five chars"
            json.loads(str(attributes[EVAL + "metadata"]))
    finally:
        provider.shutdown()
        _reset_global_tracer_provider()


def test_a_result_the_limits_would_cut_is_left_out_and_the_record_stays_whole(
    short_values: Pipeline,
) -> None:
    run = _ended(short_values)
    comment = "a justification far longer than twenty characters"
    record_feedback("correctness", score=1, comment=comment, span=run)
    attributes = _spans(short_values)["feedback correctness"].attributes or {}
    assert not any(name.startswith("evaluations.") for name in attributes)
    short_values.flush()
    (record,) = short_values.feedback.get_finished_feedback()
    assert record.comment == comment


def test_feedback_on_a_whole_trace_links_its_root(global_pipeline: Pipeline) -> None:
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    root = _spans(global_pipeline)["root"]
    trace_id, root_id = _ids(root)
    record_feedback("session_quality", score=0.9, feedback_source_type="app", trace_id=trace_id)
    carrier = _spans(global_pipeline)["feedback session_quality"]
    attributes = carrier.attributes or {}
    assert attributes[TRACE_EVAL + "name"] == "session_quality"
    assert attributes[TRACE_EVAL + "annotator_kind"] == "HUMAN"
    assert not any(name.startswith("evaluations.") for name in attributes)
    assert [_ids_of_link(link) for link in carrier.links] == [(trace_id, root_id)]
    global_pipeline.flush()
    (record,) = global_pipeline.feedback.get_finished_feedback()
    assert record.run_id is None
    assert record.trace_id == uuid.UUID(int=trace_id)


def test_a_trace_continued_from_elsewhere_links_its_first_span_here(
    global_pipeline: Pipeline,
) -> None:
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("handler", context=parent), tracer.start_as_current_span("x"):
        pass
    handler = _spans(global_pipeline)["handler"]
    record_feedback("trace_rating", score=1, trace_id=0xABC)
    carrier = _spans(global_pipeline)["feedback trace_rating"]
    assert [_ids_of_link(link) for link in carrier.links] == [_ids(handler)]


def test_while_the_trace_runs_the_current_span_is_linked(global_pipeline: Pipeline) -> None:
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("root") as root:
        trace_id = root.get_span_context().trace_id
        record_feedback("early", score=1, trace_id=trace_id)
    carrier = _spans(global_pipeline)["feedback early"]
    assert [_ids_of_link(link) for link in carrier.links] == [_ids(_spans(global_pipeline)["root"])]


def test_with_no_span_of_the_trace_known_the_carrier_is_a_root_inside_it(
    global_pipeline: Pipeline,
) -> None:
    trace_id = 0x0AF7651916CD43DD8448EB211C80319C  # a trace this process never saw
    record_feedback("trace_rating", score=1, trace_id=trace_id)
    carrier = _spans(global_pipeline)["feedback trace_rating"]
    assert carrier.context is not None
    assert carrier.context.trace_id == trace_id
    # No parent that never arrives (an orphan), and no link to a span that does not exist.
    assert carrier.parent is None
    assert carrier.links == ()
    assert (carrier.attributes or {})[TRACE_EVAL + "name"] == "trace_rating"
    # The chosen trace id was for that one span: the next root gets a fresh one.
    with global_pipeline.tracer.start_as_current_span("next") as following:
        assert following.get_span_context().trace_id != trace_id
    global_pipeline.flush()
    (record,) = global_pipeline.feedback.get_finished_feedback()
    assert record.trace_id == uuid.UUID(int=trace_id)
    assert record.run_id is None


def test_other_threads_keep_fresh_trace_ids_while_a_carrier_is_made(
    global_pipeline: Pipeline,
) -> None:
    stop = threading.Event()
    seen: list[int] = []

    def start_roots() -> None:
        while not stop.is_set():
            with global_pipeline.tracer.start_as_current_span("other") as span:
                seen.append(span.get_span_context().trace_id)

    thread = threading.Thread(target=start_roots)
    thread.start()
    try:
        for number in range(1, 200):
            record_feedback("k", score=1, trace_id=(0xF00 << 64) + number)
    finally:
        stop.set()
        thread.join()
    assert seen
    assert not [t for t in seen if t >> 64 == 0xF00]


def test_the_roots_remembered_are_bounded() -> None:
    provider = TracerProvider()
    provider.add_span_processor(FeedbackSpanProcessor(InMemoryFeedbackExporter()))
    tracer = provider.get_tracer("t")
    first = None
    for _ in range(2 * roots._MAX_TRACES + 10):
        with tracer.start_as_current_span("r") as span:
            first = first or span.get_span_context()
    assert len(roots._roots) <= 2 * roots._MAX_TRACES
    assert first is not None
    assert roots.root_of(first.trace_id) == 0
    assert roots.root_of(span.get_span_context().trace_id) == span.get_span_context().span_id
    provider.shutdown()


def test_the_response_id_of_the_judged_span_travels_with_its_feedback(
    global_pipeline: Pipeline,
) -> None:
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("generate") as span:
        record_feedback("cites_sources", score=True)
        span.set_attribute("gen_ai.response.id", "chatcmpl-123")  # known once the answer is
    generate = _spans(global_pipeline)["generate"]
    late = record_feedback("correctness", score=1, span=generate)
    assert late is not None
    carrier_event = _spans(global_pipeline)["feedback correctness"].events[0]
    assert (carrier_event.attributes or {})["gen_ai.response.id"] == "chatcmpl-123"
    with tracer.start_as_current_span("plain"):
        record_feedback("plain", score=1)
    global_pipeline.flush()
    records = {r.key: r for r in global_pipeline.feedback.get_finished_feedback()}
    # With the evaluation target: the judged span's name.
    generated = {"gen_ai.response.id": "chatcmpl-123", "gen_ai.evaluation.target": "generate"}
    assert records["cites_sources"].run_attributes == generated
    assert records["correctness"].run_attributes == generated
    assert records["plain"].run_attributes == {"gen_ai.evaluation.target": "plain"}
    # Not part of LangSmith's record format: the record's JSON is unchanged.
    assert "chatcmpl" not in records["correctness"].model_dump_json()
    assert late.to_feedback().run_attributes == generated


def test_carriers_and_response_ids_over_real_otlp(receiver: OTLPReceiver) -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.http_endpoint}/v1/traces"))
    )
    processor = FeedbackSpanProcessor(
        OTLPFeedbackExporter(endpoint=f"{receiver.http_endpoint}/v1/logs")
    )
    provider.add_span_processor(processor)
    _reset_global_tracer_provider()
    trace.set_tracer_provider(provider)
    try:
        tracer = provider.get_tracer("app")
        with (
            tracer.start_as_current_span("answer") as answer,
            tracer.start_as_current_span("generate") as generate,
        ):
            generate.set_attribute("gen_ai.response.id", "chatcmpl-abc")
            record_feedback("cites_sources", score=True, feedback_source_type="ci")
        ended = next(s for s in receiver.spans() if s.span.name == "generate")
        assert ended.span_id == generate.get_span_context().span_id
        judged = SpanContext(ended.trace_id, ended.span_id, True, TraceFlags(1))
        record_feedback("correctness", score=0.5, feedback_source_type="model", span=judged)
        record_feedback("helpful", value="yes", trace_id=ended.trace_id)
        assert processor.force_flush(10_000)
    finally:
        provider.shutdown()
        _reset_global_tracer_provider()

    spans = {s.span.name: s for s in receiver.spans()}
    answer_ids = (answer.get_span_context().trace_id, answer.get_span_context().span_id)
    correctness = spans["feedback correctness"]
    attributes = correctness.attributes
    assert attributes[a.ATTR_SPAN_KIND] == "EVALUATOR"
    assert attributes[EVAL + "name"] == "correctness"
    assert attributes[EVAL + "score"] == 0.5
    assert attributes[EVAL + "annotator_kind"] == "LLM"
    links = [
        (int.from_bytes(link.trace_id, "big"), int.from_bytes(link.span_id, "big"))
        for link in correctness.span.links
    ]
    assert links == [(ended.trace_id, ended.span_id)]
    helpful = spans["feedback helpful"]
    assert helpful.attributes[TRACE_EVAL + "label"] == "yes"
    assert [
        (int.from_bytes(link.trace_id, "big"), int.from_bytes(link.span_id, "big"))
        for link in helpful.span.links
    ] == [answer_ids]  # the trace's root
    logs = {log.attributes["gen_ai.evaluation.name"]: log for log in receiver.logs()}
    assert logs["cites_sources"].attributes["gen_ai.response.id"] == "chatcmpl-abc"
    assert logs["cites_sources"].feedback.run_attributes == {
        "gen_ai.response.id": "chatcmpl-abc",
        "gen_ai.evaluation.target": "generate",
    }
    # A SpanContext carries no attributes, but the span ended here: its response id was noted.
    assert logs["correctness"].attributes["gen_ai.response.id"] == "chatcmpl-abc"
    assert logs["correctness"].attributes["gen_ai.evaluation.target"] == "generate"
    assert (logs["helpful"].trace_id, logs["helpful"].span_id) == (ended.trace_id, 0)
