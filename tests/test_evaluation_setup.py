"""Setting online evaluation up: configure(evaluators=...) and, with no code, the environment.

configure() adds one OnlineEvaluationProcessor per provider however often it is called, and a
bad argument changes nothing. Under the real ``opentelemetry-instrument``,
``OTEL_PYTHON_FEEDBACK_EVALUATORS`` names the evaluators: their results reach the OTLP
receiver as feedback log records and their evaluator spans as spans; a reference that cannot
be used is one warning, and the application and the other evaluators run on.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import otel_feedback
from otel_feedback import (
    FeedbackInstrumentor,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    JudgedRun,
    OnlineEvaluationProcessor,
)
from otel_feedback import _environment as env
from otel_feedback._ids import uuid_from_span_id
from otel_feedback._sdk import processors_of_provider
from tests.conftest import _reset_global_tracer_provider
from tests.otlp_receiver import OTLPReceiver

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
LLM_ATTRIBUTES = {
    "openinference.span.kind": "LLM",
    "input.value": "Can I get a refund?",
    "output.value": "Refunds are possible within 30 days.",
}


def relevance(run: JudgedRun) -> dict[str, Any]:
    return {"key": "relevance", "score": 1, "comment": run.name}


async def tone(run: JudgedRun) -> dict[str, Any]:
    return {"key": "tone", "score": 0.5}


@pytest.fixture(autouse=True)
def _no_evaluation_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.OTEL_PYTHON_FEEDBACK_EVALUATORS, raising=False)
    monkeypatch.delenv(env.OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE, raising=False)


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider()
    yield made
    made.shutdown()


def processors(provider: TracerProvider) -> tuple[object, ...]:
    found = processors_of_provider(provider)
    assert found is not None
    return found


def evaluation_of(provider: TracerProvider) -> OnlineEvaluationProcessor:
    """The provider's one OnlineEvaluationProcessor (and it has one FeedbackSpanProcessor)."""
    added = processors(provider)
    (evaluation,) = [p for p in added if isinstance(p, OnlineEvaluationProcessor)]
    assert len([p for p in added if isinstance(p, FeedbackSpanProcessor)]) == 1
    return evaluation


def judge_spans(provider: TracerProvider, count: int) -> list[int]:
    """``count`` ended spans; their span ids."""
    ids = []
    for i in range(count):
        with provider.get_tracer("app").start_as_current_span(
            f"answer {i}", attributes=LLM_ATTRIBUTES
        ) as span:
            ids.append(span.get_span_context().span_id)
    return ids


def results(memory: InMemoryFeedbackExporter, processor: FeedbackSpanProcessor | None) -> Any:
    """How many results each (judged span id, key) got."""
    assert processor is not None
    assert processor.force_flush(20_000)
    return collections.Counter(
        (r.run_id.int if r.run_id else None, r.key) for r in memory.get_finished_feedback()
    )


# --- configure() ---------------------------------------------------------------------------


def test_configure_adds_one_evaluation_processor_however_often_it_is_called(
    provider: TracerProvider,
) -> None:
    memory = InMemoryFeedbackExporter()
    processor = otel_feedback.configure(
        tracer_provider=provider,
        exporters=[memory],
        evaluators=[relevance, tone],
        evaluation_sample_rate=1.0,
    )
    # Called again (with other evaluators, another rate): the first set-up stays, alone.
    again = otel_feedback.configure(
        tracer_provider=provider, exporters=[memory], evaluators=[tone], evaluation_sample_rate=0
    )
    assert again is processor
    otel_feedback.configure(tracer_provider=provider, exporters=[memory])
    evaluation = evaluation_of(provider)
    assert evaluation.evaluators == ("relevance", "tone")
    ids = judge_spans(provider, 3)
    assert results(memory, processor) == collections.Counter(
        {(span, key): 1 for span in ids for key in ("relevance", "tone")}
    )
    assert evaluation.stats().queued == 3


def test_evaluators_given_on_a_later_call_are_added_once(provider: TracerProvider) -> None:
    memory = InMemoryFeedbackExporter()
    processor = otel_feedback.configure(tracer_provider=provider, exporters=[memory])
    assert not any(isinstance(p, OnlineEvaluationProcessor) for p in processors(provider))
    for _ in range(2):
        assert (
            otel_feedback.configure(
                tracer_provider=provider, exporters=[memory], evaluators={"judge": relevance}
            )
            is processor
        )
    assert evaluation_of(provider).evaluators == ("judge",)
    (span,) = judge_spans(provider, 1)
    assert results(memory, processor) == collections.Counter({(span, "relevance"): 1})


def test_evaluation_sample_rate_zero_judges_nothing(provider: TracerProvider) -> None:
    memory = InMemoryFeedbackExporter()
    processor = otel_feedback.configure(
        tracer_provider=provider,
        exporters=[memory],
        evaluators=[relevance],
        evaluation_sample_rate=0,
    )
    judge_spans(provider, 5)
    assert results(memory, processor) == collections.Counter()
    assert evaluation_of(provider).stats().skipped == {"sampled out": 5}


def test_the_sample_rate_variable_is_the_default(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE, "0")
    memory = InMemoryFeedbackExporter()
    processor = otel_feedback.configure(
        tracer_provider=provider, exporters=[memory], evaluators=[relevance]
    )
    judge_spans(provider, 2)
    assert results(memory, processor) == collections.Counter()
    assert evaluation_of(provider).stats().skipped == {"sampled out": 2}


def test_the_arguments_win_over_the_variables(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The variables are the defaults of the arguments (configure's docstring).
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EVALUATORS, "tests.evaluation_worker:tone")
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE, "0")
    memory = InMemoryFeedbackExporter()
    processor = otel_feedback.configure(
        tracer_provider=provider,
        exporters=[memory],
        evaluators=[relevance],
        evaluation_sample_rate=1,
    )
    assert evaluation_of(provider).evaluators == ("relevance",)
    (span,) = judge_spans(provider, 1)
    assert results(memory, processor) == collections.Counter({(span, "relevance"): 1})


def test_the_instrumentor_and_configure_share_one_evaluation_processor(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EVALUATORS, "tests.test_evaluation_setup:relevance")
    memory = InMemoryFeedbackExporter()
    instrumentor = FeedbackInstrumentor()
    instrumentor.instrument(tracer_provider=provider, exporters=[memory])
    try:
        processor = otel_feedback.configure(tracer_provider=provider, exporters=[memory])
        assert evaluation_of(provider).evaluators == ("relevance",)
        (span,) = judge_spans(provider, 1)
        assert results(memory, processor) == collections.Counter({(span, "relevance"): 1})
    finally:
        instrumentor.uninstrument()


def test_evaluators_without_an_exporter_warn_once(
    provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    for _ in range(2):
        assert (
            otel_feedback.configure(
                tracer_provider=provider, exporters=["none"], evaluators=[relevance]
            )
            is None
        )
    (evaluation,) = [p for p in processors(provider) if isinstance(p, OnlineEvaluationProcessor)]
    assert not any(isinstance(p, FeedbackSpanProcessor) for p in processors(provider))
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "no feedback exporter" in warning
    assert "OTEL_PYTHON_FEEDBACK_EXPORTER" in warning
    judge_spans(provider, 1)
    assert evaluation.force_flush(20_000)
    assert evaluation.stats().succeeded == 1  # judged; the result stays on the span's event


BAD_ARGUMENTS = [
    ({"evaluators": []}, "evaluators: no evaluator given"),
    ({"evaluators": "pkg.module:fn"}, "evaluators: must be a list of callables"),
    ({"evaluators": 7}, "evaluators: must be a list of callables"),
    ({"evaluators": [1]}, "evaluators: 'int' is not callable"),
    ({"evaluators": [relevance, relevance]}, "evaluators: two evaluators are named 'relevance'"),
    ({"evaluators": {"": relevance}}, "evaluators: an evaluator's name must be a non-empty"),
    ({"evaluators": [relevance], "evaluation_sample_rate": 2}, "evaluation_sample_rate: must be"),
    ({"evaluators": [relevance], "evaluation_sample_rate": -0.1}, "evaluation_sample_rate: "),
    ({"evaluators": [relevance], "evaluation_sample_rate": "0.5"}, "evaluation_sample_rate: "),
    ({"evaluators": [relevance], "evaluation_sample_rate": True}, "evaluation_sample_rate: "),
    ({"evaluators": [relevance], "evaluation_sample_rate": float("nan")}, "evaluation_sample_"),
    ({"evaluation_sample_rate": 1.5}, "evaluation_sample_rate: must be a number from 0 to 1"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS)
def test_a_bad_argument_raises_naming_it_and_changes_nothing(
    provider: TracerProvider, arguments: dict[str, Any], message: str
) -> None:
    memory = InMemoryFeedbackExporter()
    before = processors(provider)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        otel_feedback.configure(tracer_provider=provider, exporters=[memory], **arguments)
    assert processors(provider) == before
    # Nothing was set up for this provider: a good call afterwards sets everything up.
    processor = otel_feedback.configure(
        tracer_provider=provider, exporters=[memory], evaluators=[tone]
    )
    assert evaluation_of(provider).evaluators == ("tone",)
    (span,) = judge_spans(provider, 1)
    assert results(memory, processor) == collections.Counter({(span, "tone"): 1})


@pytest.fixture
def no_global_provider() -> Iterator[None]:
    _reset_global_tracer_provider()
    yield
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
    _reset_global_tracer_provider()


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS[:1] + BAD_ARGUMENTS[6:7])
@pytest.mark.usefixtures("no_global_provider")
def test_a_bad_argument_sets_no_global_provider(
    monkeypatch: pytest.MonkeyPatch, arguments: dict[str, Any], message: str
) -> None:
    # The global provider can be set once only: a call that raises must leave it unset, for
    # the application's corrected call (or its own set_tracer_provider) to set it.
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with pytest.raises(ValueError, match=message):
        otel_feedback.configure(exporters=[InMemoryFeedbackExporter()], **arguments)
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


# --- zero-code: opentelemetry-instrument ----------------------------------------------------

APP = """
from opentelemetry import trace

tracer = trace.get_tracer("support-bot")
for i in range(3):
    with tracer.start_as_current_span(f"answer {i}", attributes=ATTRIBUTES):
        pass
print("answered 3")
"""

EVALUATORS = """
def relevance(run):
    return {"key": "relevance", "score": 1, "comment": run.name}


async def tone(run):
    return {"key": "tone", "score": 0.5}
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """The application (no OpenTelemetry set-up) and, elsewhere, its evaluators' module."""
    script = tmp_path / "app" / "app.py"
    script.parent.mkdir()
    script.write_text(f"ATTRIBUTES = {LLM_ATTRIBUTES!r}\n{APP}")
    evaluators = tmp_path / "evaluators" / "support_evaluators.py"
    evaluators.parent.mkdir()
    evaluators.write_text(EVALUATORS)
    (evaluators.parent / "explodes.py").write_text("raise RuntimeError('no judge today')\n")
    return script


def run_instrumented(
    receiver: OTLPReceiver, app: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))
    }
    environment.update(
        PYTHONPATH=str(app.parent.parent / "evaluators"),
        OTEL_SERVICE_NAME="support-bot",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    environment.update(variables)
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "answered 3\n", done.stderr[-3000:]
    return done


def assert_judged_by(receiver: OTLPReceiver, evaluators: tuple[str, ...]) -> None:
    """Each of the app's three spans has one result and one evaluator span per evaluator."""
    spans = {s.span_id: s for s in receiver.spans() if s.span.name.startswith("answer ")}
    assert sorted(s.span.name for s in spans.values()) == ["answer 0", "answer 1", "answer 2"]
    logs = receiver.logs()
    assert collections.Counter((log.span_id, log.feedback.key) for log in logs) == (
        collections.Counter({(span, key): 1 for span in spans for key in evaluators})
    )
    for log in logs:
        assert log.record.event_name == "gen_ai.evaluation.result"
        assert log.resource["service.name"] == "support-bot"
        record = log.feedback
        assert record.run_id == uuid_from_span_id(log.span_id)
        assert log.trace_id == spans[log.span_id].trace_id
        assert record.feedback_source is not None
        assert record.feedback_source.type == "model"
        if record.key == "relevance":
            assert record.comment == spans[log.span_id].span.name
    evaluations = [s for s in receiver.spans() if s.span.name.startswith("evaluate ")]
    assert collections.Counter((s.parent_span_id, s.span.name) for s in evaluations) == (
        collections.Counter({(span, f"evaluate {key}"): 1 for span in spans for key in evaluators})
    )
    # Nothing else: the evaluator spans and the feedback are not judged in turn.
    assert len(receiver.spans()) == len(spans) + len(evaluations)


def test_zero_code_evaluators_results_and_spans_reach_the_receiver(
    receiver: OTLPReceiver, app: Path
) -> None:
    done = run_instrumented(
        receiver,
        app,
        OTEL_PYTHON_FEEDBACK_EVALUATORS="support_evaluators:relevance, support_evaluators:tone",
    )
    assert_judged_by(receiver, ("relevance", "tone"))
    assert "otel_feedback" not in done.stderr


def test_zero_code_sample_rate_zero_judges_nothing(receiver: OTLPReceiver, app: Path) -> None:
    run_instrumented(
        receiver,
        app,
        OTEL_PYTHON_FEEDBACK_EVALUATORS="support_evaluators:relevance",
        OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE="0",
    )
    assert sorted(s.span.name for s in receiver.spans()) == ["answer 0", "answer 1", "answer 2"]
    assert receiver.logs() == []


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("nomodule:fn", "cannot import 'nomodule' (ModuleNotFoundError"),
        ("os:nothing", "'os' has no 'nothing'"),
        ("missing-colon", "'missing-colon' is not of the form package.module:function"),
        ("explodes:judge", "cannot import 'explodes' (RuntimeError: no judge today)"),
        ("support_evaluators:", "'support_evaluators:' is not of the form"),
    ],
)
def test_zero_code_a_bad_reference_warns_once_and_the_rest_runs(
    receiver: OTLPReceiver, app: Path, reference: str, reason: str
) -> None:
    done = run_instrumented(
        receiver,
        app,
        OTEL_PYTHON_FEEDBACK_EVALUATORS=(
            f"support_evaluators:relevance,{reference},support_evaluators:tone"
        ),
    )
    (warning,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert f"OTEL_PYTHON_FEEDBACK_EVALUATORS: {reason}" in warning
    assert "Traceback" not in done.stderr
    assert_judged_by(receiver, ("relevance", "tone"))


def test_zero_code_a_bad_sample_rate_warns_and_judges_every_trace(
    receiver: OTLPReceiver, app: Path
) -> None:
    done = run_instrumented(
        receiver,
        app,
        OTEL_PYTHON_FEEDBACK_EVALUATORS="support_evaluators:relevance",
        OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE="abc",
    )
    (warning,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert "OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE='abc' is not a number from 0 to 1" in (
        warning
    )
    assert "using 1" in warning
    assert_judged_by(receiver, ("relevance",))
