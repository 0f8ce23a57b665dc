"""Online evaluation: evaluators judge ended spans in the background; results are feedback."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from otel_feedback import (
    Feedback,
    FeedbackSource,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    JudgedRun,
    OnlineEvaluationProcessor,
    record_feedback,
)
from otel_feedback._ids import evaluation_feedback_id, uuid_from_span_id, uuid_from_trace_id

LLM_ATTRIBUTES = {
    "openinference.span.kind": "LLM",
    "input.value": "Where is my parcel?",
    "output.value": "It ships tomorrow (kb-7).",
}


class Setup:
    """A provider with span and feedback capture, and an evaluation processor added last."""

    def __init__(self, evaluators: Any, *, evaluation_first: bool = False, **options: Any):
        self.provider = TracerProvider(**options.pop("provider", {}))
        self.spans = InMemorySpanExporter()
        self.feedback = InMemoryFeedbackExporter()
        self.exporting = FeedbackSpanProcessor(self.feedback)
        self.evaluation = OnlineEvaluationProcessor(
            evaluators, tracer_provider=self.provider, **options
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        order = [self.exporting, self.evaluation]
        for processor in reversed(order) if evaluation_first else order:
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("app")

    def judged(self, name: str = "chat", **attributes: Any) -> ReadableSpan:
        with self.tracer.start_as_current_span(name, attributes=attributes or LLM_ATTRIBUTES):
            pass
        return self.finished(name)[-1]

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def records(self) -> list[Feedback]:
        assert self.exporting.force_flush(20_000)
        return sorted(self.feedback.get_finished_feedback(), key=lambda r: r.key)


@pytest.fixture
def make() -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def build(evaluators: Any, **options: Any) -> Setup:
        made.append(Setup(evaluators, **options))
        return made[-1]

    yield build
    for setup in made:
        setup.provider.shutdown()


def source(record: Feedback) -> FeedbackSource:
    assert record.feedback_source is not None
    return record.feedback_source


def trace_of(record: Feedback) -> int:
    assert record.trace_id is not None
    return record.trace_id.int


def correctness(run: JudgedRun) -> dict[str, Any]:
    return {"key": "correctness", "score": 1, "comment": f"judged {run.output_text}"}


# --- lineage -------------------------------------------------------------------------------


def test_each_result_names_the_judged_run_and_the_evaluator_span(
    make: Callable[..., Setup],
) -> None:
    setup = make([correctness])
    judged = setup.judged()
    (record,) = setup.records()
    (evaluator_span,) = setup.finished("evaluate correctness")
    assert judged.context is not None
    assert evaluator_span.context is not None
    assert record.trace_id == uuid_from_trace_id(judged.context.trace_id)
    assert record.run_id == uuid_from_span_id(judged.context.span_id)
    assert source(record).type == "model"
    assert source(record).metadata == {
        "evaluator": "correctness",
        "__run": {"run_id": str(uuid_from_span_id(evaluator_span.context.span_id))},
    }
    assert record.score == 1
    assert record.comment == "judged It ships tomorrow (kb-7)."
    assert record.id == evaluation_feedback_id(
        "correctness", "correctness", judged.context.trace_id, judged.context.span_id
    )
    # OpenInference's evaluator span: under the judged span, and linked to it, once.
    assert evaluator_span.attributes is not None
    assert evaluator_span.attributes["openinference.span.kind"] == "EVALUATOR"
    assert evaluator_span.parent is not None
    assert evaluator_span.parent.span_id == judged.context.span_id
    assert [link.context.span_id for link in evaluator_span.links] == [judged.context.span_id]
    # The result rides the evaluator span as its event, naming the judged run.
    (event,) = evaluator_span.events
    assert event.name == "gen_ai.evaluation.result"
    assert event.attributes is not None
    assert event.attributes["otel_feedback.run_id"] == f"{judged.context.span_id:016x}"
    # The judged span's evaluation target travels with the record.
    assert event.attributes["gen_ai.evaluation.target"] == "chat"


def test_a_judges_own_calls_nest_under_its_span_and_are_not_judged(
    make: Callable[..., Setup],
) -> None:
    calls: list[str] = []

    def judge(run: JudgedRun) -> dict[str, Any]:
        calls.append(run.name)
        # An instrumented LLM client of the judge makes a span of its own.
        with (
            setup.tracer.start_as_current_span("judge llm call"),
            setup.tracer.start_as_current_span("http post"),
        ):
            pass
        return {"key": "quality", "score": 0.5}

    setup = make([judge])
    setup.judged()
    assert setup.evaluation.force_flush(10_000)
    (evaluator_span,) = setup.finished("evaluate judge")
    (llm_call,) = setup.finished("judge llm call")
    assert llm_call.parent is not None
    assert evaluator_span.context is not None
    assert llm_call.parent.span_id == evaluator_span.context.span_id
    assert calls == ["chat"]  # neither the evaluator span nor the judge's calls were judged
    assert setup.evaluation.stats().queued == 1


# --- what evaluators return ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ({"key": "a", "score": True}, [("a", True, None)]),
        (
            [{"key": "a", "score": 1}, {"key": "b", "value": "x"}],
            [("a", 1, None), ("b", None, "x")],
        ),
        ({"results": [{"key": "a", "score": 0.25}]}, [("a", 0.25, None)]),
        (True, [("shape", True, None)]),
        (0.75, [("shape", 0.75, None)]),
        ("good", [("shape", None, "good")]),
        (None, []),
        ([], []),
    ],
)
def test_langsmith_result_shapes(
    make: Callable[..., Setup], returned: Any, expected: list[tuple[str, Any, Any]]
) -> None:
    setup = make({"shape": lambda run: returned})
    setup.judged()
    records = setup.records()
    assert [(r.key, r.score, r.value) for r in records] == expected
    assert all(type(r.score) is type(e[1]) for r, e in zip(records, expected, strict=True))
    stats = setup.evaluation.stats()
    assert (stats.succeeded, stats.failed, stats.results) == (1, 0, len(expected))


def test_langsmiths_own_result_models(make: Callable[..., Setup]) -> None:
    from langsmith.evaluation import EvaluationResult, EvaluationResults

    def judge(run: JudgedRun) -> EvaluationResults:
        return EvaluationResults(
            results=[
                EvaluationResult(key="helpful", score=1, comment="yes"),
                EvaluationResult(key="tone", value="friendly", evaluator_info={"model": "m"}),
            ]
        )

    setup = make([judge])
    setup.judged()
    helpful, tone = setup.records()
    assert (helpful.key, helpful.score, helpful.comment) == ("helpful", 1, "yes")
    assert (tone.key, tone.value) == ("tone", "friendly")
    metadata = source(tone).metadata
    assert metadata is not None
    assert metadata["model"] == "m"


def test_an_openevals_style_judge_plugs_in_with_one_line(make: Callable[..., Setup]) -> None:
    # openevals' judges take inputs= and outputs= keywords and return a result dict.
    def conciseness_judge(*, inputs: Any, outputs: Any, **_: Any) -> dict[str, Any]:
        return {"key": "conciseness", "score": len(str(outputs)) < 200, "comment": str(inputs)}

    setup = make(
        {"conciseness": lambda run: conciseness_judge(inputs=run.inputs, outputs=run.outputs)}
    )
    setup.judged()
    (record,) = setup.records()
    assert (record.key, record.score) == ("conciseness", True)
    assert record.comment == "{'input': 'Where is my parcel?'}"


async def async_judge(run: JudgedRun) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"key": "async", "score": 1}


def test_async_evaluators_and_plain_ones_returning_a_coroutine(make: Callable[..., Setup]) -> None:
    setup = make({"a": async_judge, "b": lambda run: async_judge(run)})  # noqa: PLW0108 - plain
    setup.judged()
    records = setup.records()
    assert [(r.key, r.score) for r in records] == [("async", 1), ("async", 1)]
    assert len({r.id for r in records}) == 2  # two evaluators: two ids


# --- failures ------------------------------------------------------------------------------


def test_an_evaluator_that_raises_gives_one_error_record(make: Callable[..., Setup]) -> None:
    def flaky(run: JudgedRun) -> None:
        raise RuntimeError("the judge model is down")

    setup = make([flaky, correctness])
    setup.judged()
    correct, error = setup.records()
    assert correct.key == "correctness"
    assert not correct.error
    assert (error.key, error.error) == ("flaky", True)
    assert error.comment == "flaky raised RuntimeError: the judge model is down"
    assert source(error).type == "model"
    (span,) = setup.finished("evaluate flaky")
    assert span.status.status_code.name == "ERROR"
    stats = setup.evaluation.stats()
    assert (stats.succeeded, stats.failed) == (1, 1)


@pytest.mark.parametrize(
    ("returned", "comment"),
    [
        ({"score": 1}, "returned an invalid result: result.key: must be a non-empty string"),
        ({"key": "k", "grade": 1}, "returned an invalid result: result.grade: not a field"),
        (object(), "returned an invalid result: result: must be a dict with a 'key'"),
    ],
)
def test_what_is_not_a_result_is_an_error_record(
    make: Callable[..., Setup], returned: Any, comment: str
) -> None:
    setup = make({"bad": lambda run: returned})
    setup.judged()
    (record,) = setup.records()
    assert (record.key, record.error) == ("bad", True)
    assert record.comment is not None
    assert record.comment.startswith(f"bad {comment}")
    assert setup.evaluation.stats().failed == 1


def test_one_invalid_result_does_not_cost_the_others(make: Callable[..., Setup]) -> None:
    setup = make({"two": lambda run: [{"key": "ok", "score": 1}, {"key": "nan", "score": "high"}]})
    setup.judged()
    nan, ok = setup.records()
    assert (ok.score, ok.error) == (1, None)
    assert nan.error is True
    assert nan.comment is not None
    assert nan.comment.startswith("invalid result: score:")


def test_evaluations_past_their_timeout_are_recorded_as_timed_out(
    make: Callable[..., Setup],
) -> None:
    release = threading.Event()

    def stuck(run: JudgedRun) -> None:
        release.wait(30)

    async def stuck_async(run: JudgedRun) -> None:
        await asyncio.sleep(30)

    setup = make({"stuck": stuck, "stuck_async": stuck_async}, evaluation_timeout_millis=200)
    try:
        setup.judged()
        records = setup.records()
    finally:
        release.set()
    assert [(r.key, r.error, r.comment) for r in records] == [
        ("stuck", True, "stuck timed out after 0.2 s"),
        ("stuck_async", True, "stuck_async timed out after 0.2 s"),
    ]
    assert setup.evaluation.stats().timed_out == 2


def test_a_hung_evaluator_keeps_its_slot_and_the_queue_bounds_the_rest(
    make: Callable[..., Setup],
) -> None:
    release = threading.Event()
    calls: list[str] = []

    def hangs(run: JudgedRun) -> None:
        calls.append(run.name)
        release.wait(60)

    setup = make([hangs], max_workers=1, max_queue_size=2, evaluation_timeout_millis=100)
    try:
        for _ in range(10):
            setup.judged()  # never waits: on_end only queues
        # The only thread is taken by the first evaluation; the queue holds two spans, and
        # the runner one more, waiting for a slot; the rest were skipped, counted.
        stats = setup.evaluation.stats()
        assert 2 <= stats.queued <= 4
        assert stats.skipped == {"queue full (evaluators busy)": 10 - stats.queued}
        # The first times out, but its thread (and so its slot) stays taken while it hangs:
        # the others wait (a flush runs out of time), and nothing else grows.
        assert not setup.evaluation.force_flush(1_000)
        stats = setup.evaluation.stats()
        assert (stats.timed_out, stats.succeeded, stats.running) == (1, 0, 0)
        assert calls == ["chat"]
    finally:
        release.set()
    # Once the hung thread returned, its slot is free again: the others are judged.
    assert setup.evaluation.force_flush(10_000)
    stats = setup.evaluation.stats()
    assert (stats.timed_out, stats.succeeded) == (1, stats.queued - 1)
    assert [(r.key, r.error) for r in setup.records()] == [("hangs", True)]


# --- choosing what is judged ---------------------------------------------------------------


class Ids(IdGenerator):
    """Trace ids chosen by the test, spans numbered."""

    def __init__(self, trace_ids: list[int]) -> None:
        self.trace_ids = trace_ids
        self.span = 0

    def generate_trace_id(self) -> int:
        return self.trace_ids.pop(0)

    def generate_span_id(self) -> int:
        self.span += 1
        return self.span


def test_a_trace_is_judged_whole_or_not_at_all_as_the_sdk_samples(
    make: Callable[..., Setup],
) -> None:
    trace_ids = [(n * 0x9E3779B97F4A7C15) & ((1 << 128) - 1) or 1 for n in range(1, 41)]
    setup = make([correctness], sample_rate=0.3, provider={"id_generator": Ids(list(trace_ids))})
    for _ in trace_ids:
        with (
            setup.tracer.start_as_current_span("root", attributes=LLM_ATTRIBUTES),
            setup.tracer.start_as_current_span("child", attributes=LLM_ATTRIBUTES),
        ):
            pass
    judged_traces = {trace_of(r) for r in setup.records()}
    ratio = TraceIdRatioBased(0.3)
    kept = {
        t
        for t in trace_ids
        if ratio.should_sample(None, t, "x").decision is Decision.RECORD_AND_SAMPLE
    }
    assert judged_traces == kept
    assert 0 < len(kept) < len(trace_ids)
    records = setup.records()
    assert all(sum(trace_of(r) == t for r in records) == 2 for t in kept)  # root and child alike
    stats = setup.evaluation.stats()
    assert stats.skipped == {"sampled out": 2 * (len(trace_ids) - len(kept))}


def test_the_span_filter_chooses_and_a_raising_one_never_reaches_the_app(
    make: Callable[..., Setup],
) -> None:
    def only_llm(span: ReadableSpan) -> bool:
        if span.name == "boom":
            raise KeyError("oops")
        return span.attributes is not None and "input.value" in span.attributes

    setup = make([correctness], span_filter=only_llm)
    setup.judged()
    setup.judged("http", **{"http.method": "GET"})
    setup.judged("boom")
    assert [r.key for r in setup.records()] == ["correctness"]
    assert setup.evaluation.stats().skipped == {"filtered out": 1, "span_filter raised": 1}


# --- flushing, shutting down ----------------------------------------------------------------


@pytest.mark.parametrize("evaluation_first", [False, True])
def test_the_feedback_processors_flush_waits_for_evaluations_whatever_the_order(
    make: Callable[..., Setup], evaluation_first: bool
) -> None:
    started = threading.Event()
    go_on = threading.Event()

    def slow(run: JudgedRun) -> dict[str, Any]:
        started.set()
        go_on.wait(10)
        return {"key": "slow", "score": 1}

    setup = make([slow], evaluation_first=evaluation_first)
    setup.judged()
    assert started.wait(10)
    threading.Timer(0.05, go_on.set).start()
    # The flush of the feedback processor alone: evaluations first, then export.
    assert setup.exporting.force_flush(10_000)
    assert [r.key for r in setup.feedback.get_finished_feedback()] == ["slow"]


def test_provider_shutdown_exports_results_of_evaluations_under_way(
    make: Callable[..., Setup],
) -> None:
    started = threading.Event()
    go_on = threading.Event()

    def slow(run: JudgedRun) -> dict[str, Any]:
        started.set()
        go_on.wait(10)
        return {"key": "slow", "score": 1}

    setup = make([slow])  # the feedback processor first: it shuts down first
    setup.judged()
    assert started.wait(10)
    threading.Timer(0.05, go_on.set).start()
    setup.provider.shutdown()
    assert [r.key for r in setup.feedback.get_finished_feedback()] == ["slow"]
    assert setup.exporting.stats().dropped == {"InMemoryFeedbackExporter": {}}


def test_after_shutdown_spans_are_counted_not_judged(make: Callable[..., Setup]) -> None:
    setup = make([correctness])
    setup.evaluation.shutdown()
    setup.judged()
    assert setup.evaluation.stats().skipped == {"after shutdown": 1}
    assert setup.records() == []


class RecordOnly(Sampler):
    """Records the judged span without sampling it; drops everything else."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kw: Any):  # type: ignore[no-untyped-def]
        decision = Decision.RECORD_ONLY if name == "chat" else Decision.DROP
        return SamplingResult(decision)

    def get_description(self) -> str:
        return "RecordOnly"


def test_results_on_a_trace_that_is_not_sampled_still_arrive(make: Callable[..., Setup]) -> None:
    setup = make([correctness], provider={"sampler": RecordOnly()})
    with setup.tracer.start_as_current_span("chat", attributes=LLM_ATTRIBUTES) as span:
        judged = span.get_span_context()
    (record,) = setup.records()
    assert (record.key, record.run_id) == ("correctness", uuid_from_span_id(judged.span_id))
    assert setup.spans.get_finished_spans() == ()  # nothing sampled, no evaluator span


# --- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"evaluators": []}, "evaluators: no evaluator given"),
        ({"evaluators": "pkg:fn"}, "evaluators: must be a list of callables"),
        ({"evaluators": [1]}, "evaluators: 'int' is not callable"),
        ({"evaluators": [correctness, correctness]}, "two evaluators are named 'correctness'"),
        (
            {"evaluators": [correctness], "sample_rate": 2},
            "sample_rate: must be a number from 0 to 1",
        ),
        (
            {"evaluators": [correctness], "max_workers": 0},
            "max_workers: must be a positive integer",
        ),
        ({"evaluators": [correctness], "max_queue_size": 0}, "max_queue_size: must be a positive"),
        (
            {"evaluators": [correctness], "evaluation_timeout_millis": 0},
            "evaluation_timeout_millis: must be a positive number of at most",
        ),
        ({"evaluators": [correctness], "span_filter": 3}, "span_filter: must be callable"),
    ],
)
def test_bad_arguments_name_themselves(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        OnlineEvaluationProcessor(**arguments)


def test_mlflow_names_the_evaluator_as_the_assessments_source(make: Callable[..., Setup]) -> None:
    from otel_feedback._export.mlflow import assessments_of

    setup = make([correctness])
    setup.judged()
    (record,) = setup.records()
    assert record.trace_id is not None
    (assessment,) = assessments_of(record, record.trace_id)
    assert assessment["source"] == {"source_type": "LLM_JUDGE", "source_id": "correctness"}


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()])
def test_an_evaluator_raising_a_base_exception_is_its_error_and_the_runner_goes_on(
    make: Callable[..., Setup], raised: BaseException
) -> None:
    def plain(run: JudgedRun) -> None:
        raise raised

    async def in_a_task(run: JudgedRun) -> None:
        raise raised

    setup = make({"plain": plain, "in_a_task": in_a_task, "correctness": correctness})
    setup.judged()
    setup.judged()  # the runner still judges after them
    records = setup.records()
    errors = sorted({(r.key, r.comment) for r in records if r.error})
    said = f"{type(raised).__name__}: {raised}" if str(raised) else type(raised).__name__
    assert errors == [
        ("in_a_task", f"in_a_task raised {said}"),
        ("plain", f"plain raised {said}"),
    ]
    assert sum(r.key == "correctness" for r in records) == 2
    assert setup.evaluation.stats().failed == 4


def test_an_async_evaluator_that_ignores_its_cancellation_is_timed_out_at_once(
    make: Callable[..., Setup],
) -> None:
    finish = asyncio.Event()

    async def stubborn(run: JudgedRun) -> None:
        while not finish.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # ignored
                await asyncio.sleep(0.01)

    setup = make([stubborn], max_workers=1, evaluation_timeout_millis=100)
    setup.judged()
    setup.judged()
    # Recorded as timed out at its timeout; its slot stays taken while it runs on, so the
    # second span waits; at shutdown it is given up, counted.
    assert not setup.evaluation.force_flush(1_000)
    stats = setup.evaluation.stats()
    assert (stats.timed_out, stats.running) == (1, 0)
    setup.provider.shutdown()
    stats = setup.evaluation.stats()
    assert stats.skipped == {"not evaluated before the shutdown deadline": 1}
    (record,) = setup.feedback.get_finished_feedback()
    assert record.comment == "stubborn timed out after 0.1 s"
    finish.set()  # it ends at last, on the runner's thread


class Unreadable(Exception):  # noqa: N818 - named for what it is
    def __str__(self) -> str:
        raise RuntimeError("no message")

    __repr__ = __str__


class Key(str):
    pass


class Odd(BaseException):
    """Neither an Exception nor SystemExit nor KeyboardInterrupt."""


@pytest.mark.parametrize(
    ("returns", "comment"),
    [
        ("unreadable", "bad raised Unreadable (its message could not be read)"),
        ("odd", "bad raised Odd: odd"),
        ("odd_async", "bad raised Odd: odd"),
        ("bad key", "bad returned an invalid result: result.<a int key>: not a field"),
    ],
)
def test_what_breaks_the_reading_of_an_error_still_ends_its_span(
    make: Callable[..., Setup], returns: str, comment: str
) -> None:
    from otel_feedback._evaluation.judging import judging_spans

    def plain(run: JudgedRun) -> Any:
        if returns == "unreadable":
            raise Unreadable
        if returns == "odd":
            raise Odd("odd")
        return {"key": "k", 3: "three"}

    async def in_a_task(run: JudgedRun) -> None:
        raise Odd("odd")

    setup = make({"bad": in_a_task if returns == "odd_async" else plain})
    for _ in range(3):
        setup.judged()
    records = setup.records()
    assert len(records) == 3
    assert all(r.error and r.comment and r.comment.startswith(comment) for r in records)
    ended = {s.context.span_id for s in setup.finished("evaluate bad") if s.context}
    assert len(ended) == 3  # every evaluator span ended, and is forgotten
    assert not ended & judging_spans.keys()
    stats = setup.evaluation.stats()
    assert (stats.failed, stats.results) == (3, 3)


def test_a_result_with_an_invalid_field_counts_as_failed(make: Callable[..., Setup]) -> None:
    setup = make({"sets": lambda run: {"key": "k", "value": {"a", "b"}}})
    setup.judged()
    (record,) = setup.records()
    assert record.error is True
    assert record.comment is not None
    assert record.comment.startswith("invalid result: value:")
    stats = setup.evaluation.stats()
    assert (stats.succeeded, stats.failed) == (0, 1)


def test_results_with_no_feedback_processor_to_export_them_are_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = TracerProvider()
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    evaluation = OnlineEvaluationProcessor([correctness], tracer_provider=provider)
    provider.add_span_processor(evaluation)
    try:
        with provider.get_tracer("app").start_as_current_span("chat", attributes=LLM_ATTRIBUTES):
            pass
        assert evaluation.force_flush(10_000)
    finally:
        provider.shutdown()
    assert (
        "Dropped 1 evaluation result(s) for evaluation: no FeedbackSpanProcessor (or none not "
        "shut down) on the evaluator span's provider" in caplog.text
    )
    # The result is still on its evaluator span, for the trace's own exporter.
    (evaluator_span,) = [s for s in spans.get_finished_spans() if s.name.startswith("evaluate")]
    assert [e.name for e in evaluator_span.events] == ["gen_ai.evaluation.result"]


def test_a_hung_evaluator_never_costs_the_other_feedback_its_delivery() -> None:
    release = threading.Event()

    def hangs(run: JudgedRun) -> None:
        release.wait(60)

    provider = TracerProvider()
    feedback = InMemoryFeedbackExporter()
    exporting = FeedbackSpanProcessor(feedback, export_timeout_millis=3_000)
    provider.add_span_processor(exporting)
    evaluation = OnlineEvaluationProcessor(
        [hangs], max_workers=1, evaluation_timeout_millis=500, tracer_provider=provider
    )
    provider.add_span_processor(evaluation)
    try:
        tracer = provider.get_tracer("app")
        for _ in range(3):
            with tracer.start_as_current_span("chat", attributes=LLM_ATTRIBUTES):
                record_feedback("thumbs", score=1, feedback_source_type="app")
        provider.shutdown()
    finally:
        release.set()
    keys = sorted(r.key for r in feedback.get_finished_feedback())
    assert keys == ["hangs", "thumbs", "thumbs", "thumbs"]  # one timed out, two given up
    assert evaluation.stats().skipped == {"not evaluated before the shutdown deadline": 2}
    assert exporting.stats().dropped == {"InMemoryFeedbackExporter": {}}


def test_a_judge_past_its_timeout_still_has_its_own_calls_left_unjudged(
    make: Callable[..., Setup],
) -> None:
    judged: list[str] = []
    done = threading.Event()

    def slow_judge(run: JudgedRun) -> dict[str, Any]:
        judged.append(run.name)
        assert called.wait(10)  # the timeout has passed: its model call comes late
        with setup.tracer.start_as_current_span("chat", attributes=LLM_ATTRIBUTES):
            pass  # the judge's own LLM call, in the span's own convention
        done.set()
        return {"key": "late", "score": 1}

    called = threading.Event()
    setup = make([slow_judge], evaluation_timeout_millis=100)
    setup.judged()
    assert setup.evaluation.force_flush(10_000)  # timed out; its thread runs on
    assert setup.evaluation.stats().timed_out == 1
    called.set()
    assert done.wait(10)
    assert setup.evaluation.force_flush(10_000)
    assert judged == ["chat"]  # the judge's late call was not judged in turn
    assert setup.evaluation.stats().queued == 1


def test_two_evaluation_processors_never_judge_each_others_judges(
    make: Callable[..., Setup],
) -> None:
    def judge(run: JudgedRun) -> dict[str, Any]:
        with setup.tracer.start_as_current_span("chat", attributes=LLM_ATTRIBUTES):
            pass  # the judge's own LLM call
        return {"key": "quality", "score": 1}

    def tone(run: JudgedRun) -> dict[str, Any]:
        return {"key": "tone", "value": "calm"}

    setup = make([judge])
    second = OnlineEvaluationProcessor([tone], tracer_provider=setup.provider)
    setup.provider.add_span_processor(second)
    setup.judged()
    assert setup.evaluation.force_flush(10_000)
    assert second.force_flush(10_000)
    assert sorted(r.key for r in setup.records()) == ["quality", "tone"]
    assert (setup.evaluation.stats().queued, second.stats().queued) == (1, 1)


def test_an_evaluator_raising_cancelled_error_itself_is_its_error(
    make: Callable[..., Setup],
) -> None:
    async def gives_up(run: JudgedRun) -> None:
        raise asyncio.CancelledError

    setup = make([gives_up])
    setup.judged()
    (record,) = setup.records()
    assert (record.error, record.comment) == (True, "gives_up raised CancelledError")
    assert setup.evaluation.stats().failed == 1


def test_a_key_given_twice_in_one_evaluation_is_its_error(make: Callable[..., Setup]) -> None:
    # Both would have the same id: a receiver keeping one record per id would keep one.
    setup = make({"twice": lambda run: [{"key": "k", "score": 0}, {"key": "k", "score": 1}]})
    setup.judged()
    (record,) = setup.records()
    assert record.comment == "twice returned an invalid result: result[1].key: 'k' is given twice"


def test_shutting_down_another_providers_export_leaves_this_evaluation_running(
    make: Callable[..., Setup],
) -> None:
    this, other = make([correctness]), make([correctness])
    other.provider.shutdown()
    this.judged()
    assert [r.key for r in this.records()] == ["correctness"]
    assert this.evaluation.stats().skipped == {}
