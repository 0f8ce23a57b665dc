"""Evaluators against a real Arize Phoenix: their spans under the judged spans, their results as
annotations on them, and a second judging that updates those annotations rather than adding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_feedback import (
    Feedback,
    FeedbackSpanProcessor,
    OnlineEvaluationProcessor,
    PhoenixFeedbackExporter,
)
from otel_feedback._ids import evaluation_feedback_id
from tests.phoenix_server import PhoenixServer
from tests.test_judged_run import otlp_json_of

pytestmark = pytest.mark.phoenix

ROOT = Path(__file__).parent.parent
PIPELINE = ROOT / "examples" / "llm_pipeline.py"
COMMAND = Path(sys.executable).parent / "otel-feedback"
WARRANTY = "How long is the warranty on headphones?"

# The example evaluators need the examples extra.
pytest.importorskip("openai")
pytest.importorskip("vaderSentiment")


def user_environment(**variables: str) -> dict[str, str]:
    """The environment with only these OpenTelemetry, Phoenix and OpenAI variables."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PYTEST_", "PHOENIX_", "OPENAI_"))
    }
    environment.update(variables)
    return environment


def to_phoenix(phoenix: PhoenixServer, project: str) -> dict[str, str]:
    """Spans over OTLP/HTTP into ``project``, feedback as Phoenix annotations."""
    return {
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{phoenix.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix.url,
    }


def evaluator_span_of(annotation: dict[str, Any]) -> str | None:
    """The evaluator span an annotation's record names as its source (its source_run_id)."""
    source = annotation["metadata"].get("feedback_source") or {}
    run = (source.get("metadata") or {}).get("__run")
    return f"{uuid.UUID(run['run_id']).int:016x}" if run else None


def evaluations_by_span(
    phoenix: PhoenixServer, project: str, span_ids: list[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The evaluators' annotations on the spans, by (span id, name); one each at most."""
    found = [
        a for a in phoenix.span_annotations(project, span_ids) if evaluator_span_of(a) is not None
    ]
    by_key = {(a["span_id"], a["name"]): a for a in found}
    assert len(by_key) == len(found), found  # never two of one name on a span
    return by_key


def test_the_pipelines_evaluators_show_under_the_spans_they_judge_and_as_annotations(
    phoenix: PhoenixServer, tmp_path: Path
) -> None:
    project = f"evaluated-{uuid.uuid4().hex[:8]}"
    records_file = tmp_path / "records.jsonl"
    subprocess.run(
        [sys.executable, str(PIPELINE)],
        env=user_environment(
            OTEL_SERVICE_NAME="support-bot",
            OTEL_PYTHON_FEEDBACK_EXPORTER="phoenix,jsonl",
            OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(records_file),
            **to_phoenix(phoenix, project),
        ),
        check=True,
        timeout=180,
        capture_output=True,
    )
    records = [Feedback.model_validate_json(line) for line in records_file.read_text().splitlines()]
    online = [
        r
        for r in records
        if r.feedback_source is not None and "__run" in (r.feedback_source.metadata or {})
    ]
    assert len(online) == 8  # the LLM judge on 4 generate spans, the sentiment on 4 questions

    spans = phoenix.wait_for(
        "the pipeline's spans and its evaluator spans",
        lambda: len(found := phoenix.spans(project)) >= 4 * 5 + 8 and found,
    )
    by_id = {s["context"]["span_id"]: s for s in spans}
    evaluators = [s for s in spans if s["name"].startswith("evaluate ")]
    assert sorted(s["name"] for s in evaluators) == sorted(
        ["evaluate llm_judge"] * 4 + ["evaluate sentiment"] * 4
    )
    for span in evaluators:
        judged = by_id[span["parent_id"]]
        # Under the span it judged, in its trace, as an OpenInference EVALUATOR span.
        assert (
            judged["name"]
            == {
                "evaluate llm_judge": "generate",
                "evaluate sentiment": "answer_question",
            }[span["name"]]
        )
        assert span["context"]["trace_id"] == judged["context"]["trace_id"]
        assert span["span_kind"] == "EVALUATOR" or (
            span["attributes"]["openinference.span.kind"] == "EVALUATOR"
        )
        # The result rides the evaluator span as its event.
        [event] = [e for e in span["events"] if e["name"] == "gen_ai.evaluation.result"]
        assert event["attributes"]["otel_feedback.run_id"] == judged["context"]["span_id"]

    # The annotations, on the judged spans, one per result, their identifier the record's id.
    judged_ids = sorted({s["parent_id"] for s in evaluators})
    annotations = phoenix.wait_for(
        "the evaluators' annotations",
        lambda: len(found := evaluations_by_span(phoenix, project, judged_ids)) >= 8 and found,
    )
    assert len(annotations) == 8
    evaluator_names = {"correctness": "llm_judge", "user_sentiment": "sentiment"}
    for record in online:
        assert record.run_id is not None
        assert record.trace_id is not None
        span_id = f"{record.run_id.int:016x}"
        judged = by_id[span_id]
        annotation = annotations[span_id, record.key]
        assert annotation["identifier"] == str(record.id)
        assert record.id == evaluation_feedback_id(
            evaluator_names[record.key], record.key, record.trace_id.int, record.run_id.int
        )
        assert annotation["annotator_kind"] == "LLM"
        assert annotation["result"]["score"] == pytest.approx(record.score)
        assert annotation["result"]["explanation"] == record.comment
        # The evaluator span that gave it, named in the annotation's metadata.
        source = by_id[evaluator_span_of(annotation) or ""]
        assert source["name"] == f"evaluate {evaluator_names[record.key]}"
        assert source["parent_id"] == span_id
    # The wrong warranty answer: the judge scores its LLM call 0, with why.
    [warranty] = [
        s
        for s in spans
        if s["name"] == "answer_question" and s["attributes"].get("input.value") == WARRANTY
    ]
    [generate] = [
        s
        for s in spans
        if s["name"] == "generate" and s["parent_id"] == warranty["context"]["span_id"]
    ]
    verdict = annotations[generate["context"]["span_id"], "correctness"]
    assert verdict["result"]["score"] == 0
    assert "does not support" in verdict["result"]["explanation"]


class App:
    """A small support bot, traced to Phoenix, its LLM calls judged online by the example judge."""

    def __init__(self, phoenix: PhoenixServer, project: str, judge: Any) -> None:
        self.provider = TracerProvider(
            resource=Resource.create(
                {"service.name": "support-bot", "openinference.project.name": project}
            )
        )
        self.spans = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces"))
        )
        self.provider.add_span_processor(
            FeedbackSpanProcessor(PhoenixFeedbackExporter(endpoint=phoenix.url))
        )
        self.provider.add_span_processor(
            OnlineEvaluationProcessor(
                [judge],
                span_filter=lambda span: span.name == "generate",
                tracer_provider=self.provider,
            )
        )
        self.tracer = self.provider.get_tracer("support-bot")

    def answer(self, context: str, question: str, answer: str) -> None:
        with (
            self.tracer.start_as_current_span(
                "answer_question",
                attributes={"openinference.span.kind": "CHAIN", "input.value": question},
            ),
            self.tracer.start_as_current_span(
                "generate",
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": f"{context}\n\nQuestion: {question}",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": answer,
                },
            ),
        ):
            pass

    def judged_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == "generate"]


def test_judging_the_same_spans_again_offline_updates_their_annotations(
    phoenix: PhoenixServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("OPENAI_")]:
        monkeypatch.delenv(name)  # the example judge asks its loopback stand-in
    evaluators = pytest.importorskip("examples.evaluators")
    project = f"rejudged-{uuid.uuid4().hex[:8]}"
    app = App(phoenix, project, evaluators.llm_judge)
    app.answer(
        "[kb-103] Headphones carry a 2-year limited warranty.",
        WARRANTY,
        "Headphones carry a 1-year limited warranty [kb-103].",
    )
    app.answer(
        "[kb-102] Express shipping takes 1 to 2 business days.",
        "How long does express shipping take?",
        "Express shipping takes 1 to 2 business days [kb-102].",
    )
    assert app.provider.force_flush(60_000)
    judged = app.judged_spans()
    span_ids = [f"{s.context.span_id:016x}" for s in judged if s.context is not None]
    first = phoenix.wait_for(
        "the online judge's annotations",
        lambda: len(found := evaluations_by_span(phoenix, project, span_ids)) >= 2 and found,
    )
    # The online evaluator spans, as the app made them.
    online_spans = {
        f"{s.context.span_id:016x}"
        for s in app.spans.get_finished_spans()
        if s.name == "evaluate llm_judge" and s.context is not None
    }
    assert len(online_spans) == 2
    assert {evaluator_span_of(a) for a in first.values()} == online_spans

    # The same spans, as a Collector's file exporter writes them, judged again by the command.
    spans_file = tmp_path / "spans.json"
    spans_file.write_text("".join(json.dumps(otlp_json_of(s)) + "\n" for s in judged))
    done = subprocess.run(
        [str(COMMAND), "evaluate", "--evaluator", "examples.evaluators:llm_judge", str(spans_file)],
        env=user_environment(
            PYTHONPATH=str(ROOT),
            OTEL_SERVICE_NAME="offline-judge",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_PYTHON_FEEDBACK_EXPORTER="phoenix",
            COLUMNS="200",
            **to_phoenix(phoenix, project),
        ),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "judged 2 of 2 span(s); 2 result(s), 2 of 2 delivered" in done.stdout

    # Two evaluator spans under each judged span now: the online one and the command's.
    def evaluator_spans() -> list[dict[str, Any]]:
        return [s for s in phoenix.spans(project) if s["name"] == "evaluate llm_judge"]

    evaluator_spans_now = phoenix.wait_for(
        "the command's evaluator spans", lambda: len(found := evaluator_spans()) == 4 and found
    )
    assert sorted(s["parent_id"] for s in evaluator_spans_now) == sorted(span_ids * 2)
    offline_spans = {
        s["context"]["span_id"]
        for s in evaluator_spans_now
        if s["context"]["span_id"] not in online_spans
    }
    assert len(offline_spans) == 2

    # The same annotations, updated: the same ids, their source now the command's spans.
    def updated() -> dict[tuple[str, str], dict[str, Any]]:
        found = evaluations_by_span(phoenix, project, span_ids)
        sources = {evaluator_span_of(a) for a in found.values()}
        return found if sources == offline_spans else {}

    again = phoenix.wait_for("the annotations updated", updated)
    assert set(again) == set(first)
    for key, annotation in again.items():
        assert annotation["id"] == first[key]["id"]
        assert annotation["identifier"] == first[key]["identifier"]
        assert annotation["result"] == first[key]["result"]  # the same verdict
    scores = sorted(a["result"]["score"] for a in again.values())
    assert scores == [0.0, 1.0]
    app.provider.shutdown()
