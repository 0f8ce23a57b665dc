"""End to end against a real MLflow tracking server: feedback as assessments next to its trace.

Real OTLP traces go to MLflow's ``/v1/traces``; the records go through the processor and
``MLflowFeedbackExporter``; what MLflow stored is read back through its REST API and through
its own Python client (in MLflow's venv), JSON types included.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_feedback import (
    FeedbackExportResult,
    FeedbackSpanProcessor,
    MLflowFeedbackExporter,
    record_feedback,
)
from otel_feedback._export.mlflow import FEEDBACK_ID, FEEDBACK_VALUE
from tests.conftest import trace_judged_elsewhere
from tests.mlflow_server import MLflowServer, mlflow_bin
from tests.server_process import installed

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    executable = installed(mlflow_bin(), "MLflow")
    server = MLflowServer(executable, tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


def span_exporter(mlflow: MLflowServer, experiment_id: str) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"{mlflow.url}/v1/traces", headers={"x-mlflow-experiment-id": experiment_id}
    )


def by_id(assessments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["assessment_id"]: a for a in assessments}


def test_each_record_is_an_assessment_on_its_trace_and_span(mlflow: MLflowServer) -> None:
    experiment = mlflow.create_experiment(f"feedback-{uuid.uuid4().hex[:8]}")
    provider = TracerProvider()
    # Spans first, so that a span reaches MLflow before the feedback about it.
    provider.add_span_processor(SimpleSpanProcessor(span_exporter(mlflow, experiment)))
    processor = FeedbackSpanProcessor(MLflowFeedbackExporter(tracking_uri=mlflow.url))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("support-bot")
    with tracer.start_as_current_span("answer") as answer:
        with tracer.start_as_current_span("retrieve") as retrieve:
            hit = record_feedback("retrieval_hit", score=True, feedback_source_type="ci")
        judged = record_feedback(
            "correctness",
            score=0.75,
            comment="cites the policy",
            feedback_source_type="model",
            correction={"answer": "42"},
        )
        rated = record_feedback(
            "user_rating", value="thumbs_up", feedback_source_type="app", user_id="u-42"
        )
    whole = record_feedback("trace_quality", score=1, trace_id=answer.get_span_context().trace_id)
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert hit is not None
    assert judged is not None
    assert rated is not None
    assert whole is not None

    trace_id = f"tr-{answer.get_span_context().trace_id:032x}"
    answer_span = f"{answer.get_span_context().span_id:016x}"
    retrieve_span = f"{retrieve.get_span_context().span_id:016x}"
    stored = mlflow.trace(trace_id)
    assert stored is not None
    assert stored["trace_info"]["trace_location"]["mlflow_experiment"]["experiment_id"] == (
        experiment
    )
    assessments = by_id(stored["trace_info"]["assessments"])
    assert set(assessments) == {
        f"a-{hit.id.hex}",
        f"a-{judged.id.hex}",
        f"a-{judged.id.hex}-correction",
        f"a-{rated.id.hex}",
        f"a-{whole.id.hex}",
    }
    retrieval = assessments[f"a-{hit.id.hex}"]
    assert retrieval["assessment_name"] == "retrieval_hit"
    assert retrieval["span_id"] == retrieve_span
    assert retrieval["source"]["source_type"] == "CODE"
    assert retrieval["feedback"]["value"] is True
    assert retrieval["metadata"][FEEDBACK_ID] == str(hit.id)

    correctness = assessments[f"a-{judged.id.hex}"]
    assert correctness["span_id"] == answer_span
    assert correctness["source"]["source_type"] == "LLM_JUDGE"
    assert correctness["rationale"] == "cites the policy"
    assert correctness["feedback"]["value"] == 0.75
    assert correctness["metadata"][FEEDBACK_ID] == str(judged.id)
    expectation = assessments[f"a-{judged.id.hex}-correction"]
    assert expectation["assessment_name"] == "correctness"
    assert expectation["span_id"] == answer_span
    assert expectation["expectation"]["serialized_value"]["value"] == '{"answer": "42"}'

    rating = assessments[f"a-{rated.id.hex}"]
    assert rating["span_id"] == answer_span
    assert rating["source"] == {"source_type": "HUMAN", "source_id": "u-42"}
    assert rating["feedback"]["value"] == "thumbs_up"
    assert rating["metadata"][FEEDBACK_ID] == str(rated.id)

    trace_level = assessments[f"a-{whole.id.hex}"]
    assert "span_id" not in trace_level
    assert trace_level["feedback"]["value"] == 1.0  # MLflow keeps numbers as floats

    # MLflow's own client reads the same assessments on the same spans.
    through_client = by_id(mlflow.assessments_through_client(trace_id))
    assert set(through_client) == set(assessments)
    for assessment_id, assessment in through_client.items():
        assert assessment.get("span_id") == assessments[assessment_id].get("span_id")
        assert (
            assessment["source"]["source_type"]
            == (assessments[assessment_id]["source"]["source_type"])
        )
    assert through_client[f"a-{judged.id.hex}"]["rationale"] == "cites the policy"
    assert through_client[f"a-{rated.id.hex}"]["metadata"][FEEDBACK_ID] == str(rated.id)


def test_feedback_on_a_trace_not_ingested_yet_is_retried_then_lands_once(
    mlflow: MLflowServer,
) -> None:
    experiment = mlflow.create_experiment(f"late-{uuid.uuid4().hex[:8]}")
    provider = TracerProvider()
    held = InMemorySpanExporter()  # the spans are held back: MLflow does not know the trace
    provider.add_span_processor(SimpleSpanProcessor(held))
    exporter = MLflowFeedbackExporter(tracking_uri=mlflow.url)
    processor = FeedbackSpanProcessor(exporter, retry_for_millis=60_000)
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("judged") as span:
        record = record_feedback("accuracy", score=0.25, comment="first")
    assert record is not None
    trace_id = f"tr-{span.get_span_context().trace_id:032x}"

    # MLflow answers 404 for the unknown trace: the exporter says RETRY, the engine holds it.
    assert not processor.force_flush(1_500)
    assert mlflow.trace(trace_id) is None

    assert span_exporter(mlflow, experiment).export(held.get_finished_spans()) is (
        SpanExportResult.SUCCESS
    )
    assert processor.force_flush(30_000)
    stored = mlflow.trace(trace_id)
    assert stored is not None
    (assessment,) = stored["trace_info"]["assessments"]
    assert assessment["assessment_id"] == f"a-{record.id.hex}"
    assert assessment["span_id"] == f"{span.get_span_context().span_id:016x}"

    # Sent again (as after an answer lost on the way): one assessment, not two.
    assert exporter.export([record.to_feedback()]) is FeedbackExportResult.SUCCESS
    again = mlflow.trace(trace_id)
    assert again is not None
    assert [a["assessment_id"] for a in again["trace_info"]["assessments"]] == [
        f"a-{record.id.hex}"
    ]
    provider.shutdown()


def test_carriers_of_a_trace_seen_elsewhere_stay_in_it_under_its_real_root(
    mlflow: MLflowServer,
) -> None:
    experiment = mlflow.create_experiment(f"carriers-{uuid.uuid4().hex[:8]}")
    trace_id, child_id = trace_judged_elsewhere(lambda: span_exporter(mlflow, experiment))
    seen = mlflow.spans_through_client(f"tr-{trace_id:032x}")
    parents = {s["name"]: s["parent_id"] for s in seen["spans"]}
    assert set(parents) == {"root", "child", "feedback faithful", "feedback trace_quality"}
    assert parents["feedback faithful"] == f"{child_id:016x}"
    assert parents["feedback trace_quality"] is None  # no made-up parent
    # MLflow's client takes the earliest-starting span without a parent as the root.
    assert seen["root"] == "root"
    # MLflow reads no OpenInference result from span attributes: no assessment appears.
    assert seen["assessments"] == 0


def exactly(value: Any) -> Any:
    """``value`` with its JSON types spelled out: 3 and 3.0 compare unequal."""
    if isinstance(value, dict):
        return {key: exactly(item) for key, item in value.items()}
    if isinstance(value, list):
        return [exactly(item) for item in value]
    return (type(value).__name__, value)


def test_values_and_corrections_keep_their_json_types(mlflow: MLflowServer) -> None:
    experiment = mlflow.create_experiment(f"types-{uuid.uuid4().hex[:8]}")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter(mlflow, experiment)))
    processor = FeedbackSpanProcessor(MLflowFeedbackExporter(tracking_uri=mlflow.url))
    provider.add_span_processor(processor)
    structured_value = {"y": 3, "items": [1, 2], "ok": True, "ratio": 0.5, "name": "x"}
    structured_correction = {"y": 3, "items": [1, 2], "nested": {"n": -7, "f": 2.25}}
    with provider.get_tracer("t").start_as_current_span("answer") as span:
        structured = record_feedback(
            "structured", value=structured_value, correction=structured_correction
        )
        counted = record_feedback("count", score=3, correction="three")
        flagged = record_feedback("flag", score=False, value=7)
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert structured is not None
    assert counted is not None
    assert flagged is not None
    trace_id = f"tr-{span.get_span_context().trace_id:032x}"

    # MLflow's REST API.
    stored = mlflow.trace(trace_id)
    assert stored is not None
    rest = by_id(stored["trace_info"]["assessments"])
    correction = rest[f"a-{structured.id.hex}-correction"]["expectation"]["serialized_value"]
    assert correction["serialization_format"] == "JSON_FORMAT"
    assert exactly(json.loads(correction["value"])) == exactly(structured_correction)
    assert rest[f"a-{counted.id.hex}-correction"]["expectation"]["value"] == "three"
    exact = {
        structured.id: structured_value,
        counted.id: 3,
        flagged.id: False,
    }
    for feedback_id, value in exact.items():
        metadata = rest[f"a-{feedback_id.hex}"]["metadata"]
        assert exactly(json.loads(metadata[FEEDBACK_VALUE])) == exactly(value)
    # A feedback value is MLflow's protobuf Value: its numbers are doubles.
    assert rest[f"a-{counted.id.hex}"]["feedback"]["value"] == 3.0
    assert json.loads(rest[f"a-{flagged.id.hex}"]["metadata"]["value"]) == 7

    # MLflow's own client: the same values, the same types.
    through_client = {
        found["id"]: found
        for found in mlflow._through_client(
            "print(json.dumps([{'id': a.assessment_id, 'value': a.value,"
            " 'metadata': a.metadata} for a in trace.info.assessments]))\n",
            trace_id,
        )
    }
    assert exactly(through_client[f"a-{structured.id.hex}-correction"]["value"]) == exactly(
        structured_correction
    )
    assert through_client[f"a-{counted.id.hex}-correction"]["value"] == "three"
    for feedback_id, value in exact.items():
        metadata = through_client[f"a-{feedback_id.hex}"]["metadata"]
        assert exactly(json.loads(metadata[FEEDBACK_VALUE])) == exactly(value)
    assert through_client[f"a-{flagged.id.hex}"]["value"] is False
