"""End to end against a real Arize Phoenix: feedback next to its trace, and as annotations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_feedback import (
    Feedback,
    FeedbackExportResult,
    PartialFeedbackExport,
    PhoenixFeedbackExporter,
    record_feedback,
)
from otel_feedback._kinds import annotator_kind
from tests.conftest import make_pipeline, trace_judged_elsewhere
from tests.phoenix_server import PhoenixServer

pytestmark = pytest.mark.phoenix

APP = Path(__file__).parent.parent / "examples" / "zero_code_app.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


def _project() -> str:
    return f"feedback-{uuid.uuid4().hex[:8]}"


def _by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span["name"]: span for span in spans}


def test_feedback_is_shown_next_to_its_trace_and_as_annotations(
    phoenix: PhoenixServer, tmp_path: Path
) -> None:
    project = _project()
    records_file = tmp_path / "records.jsonl"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    environment.update(
        OTEL_SERVICE_NAME="support-bot",
        OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={project}",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{phoenix.url}/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_FEEDBACK_EXPORTER="phoenix,jsonl",  # Phoenix takes no OTLP logs
        OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(records_file),
        PHOENIX_COLLECTOR_ENDPOINT=phoenix.url,
    )
    subprocess.run(
        [str(INSTRUMENT), sys.executable, str(APP)],
        env=environment,
        check=True,
        timeout=180,
        capture_output=True,
    )
    records = {
        r.key: r
        for r in (Feedback.model_validate_json(x) for x in records_file.read_text().splitlines())
    }
    assert set(records) == {"retrieval_hit", "correctness", "user_rating"}

    spans = _by_name(
        phoenix.wait_for(
            "the app's three spans",
            lambda: len(phoenix.spans(project)) >= 3 and phoenix.spans(project),
        )
    )
    answer, retrieve = spans["answer"], spans["retrieve"]
    carrier = spans["feedback user_rating"]
    answer_id = answer["context"]["span_id"]

    # The events, in the spans' Events tab.
    def keys(span: dict[str, Any]) -> list[str]:
        return [
            e["attributes"]["gen_ai.evaluation.name"]
            for e in span["events"]
            if e["name"] == "gen_ai.evaluation.result"
        ]

    assert keys(answer) == ["correctness"]
    assert keys(retrieve) == ["retrieval_hit"]
    # The late feedback: its carrier sits inside the same trace, under the run it judges.
    assert keys(carrier) == ["user_rating"]
    assert carrier["parent_id"] == answer_id
    assert carrier["context"]["trace_id"] == answer["context"]["trace_id"]
    (event,) = carrier["events"]
    assert event["attributes"]["otel_feedback.run_id"] == answer_id

    # The annotations, in Phoenix's own feedback views, on the runs they judge.
    span_ids = [answer_id, retrieve["context"]["span_id"]]
    annotations = phoenix.wait_for(
        "three annotations",
        lambda: len(found := phoenix.span_annotations(project, span_ids)) >= 3 and found,
    )
    by_name = {a["name"]: a for a in annotations}
    assert set(by_name) == set(records)
    for key, record in records.items():
        annotation = by_name[key]
        assert annotation["identifier"] == str(record.id)
        assert annotation["span_id"] == f"{record.run_id.int:016x}"  # type: ignore[union-attr]
        assert annotation["result"]["score"] == float(record.score)  # type: ignore[arg-type]
    assert by_name["user_rating"]["annotator_kind"] == "HUMAN"
    assert by_name["user_rating"]["result"]["label"] == "thumbs_up"
    assert by_name["correctness"]["annotator_kind"] == "LLM"
    assert by_name["correctness"]["result"]["explanation"] == "cites the policy"
    assert by_name["retrieval_hit"]["annotator_kind"] == "CODE"
    assert by_name["user_rating"]["span_id"] == answer_id


def test_an_annotation_waits_for_its_span_and_a_resent_record_updates_it(
    phoenix: PhoenixServer,
) -> None:
    project = _project()
    exporter = PhoenixFeedbackExporter(endpoint=phoenix.url)
    provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    held = InMemorySpanExporter()  # the spans are held back: Phoenix does not know them yet
    provider.add_span_processor(SimpleSpanProcessor(held))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("judged") as span:
        record = record_feedback("accuracy", score=0.25, comment="first")
        # Phoenix keeps the annotation name "note" for itself; this one must not vanish.
        note = record_feedback("note", value="re-check the citation")
    with tracer.start_as_current_span("never sent"):
        orphan = record_feedback("accuracy", score=1)
    assert record is not None
    assert note is not None
    assert orphan is not None
    built, built_note, built_orphan = record.to_feedback(), note.to_feedback(), orphan.to_feedback()
    # Phoenix answers (404): it is up, but lacks the span yet.
    unready = exporter.export([built, built_note])
    assert isinstance(unready, PartialFeedbackExport)
    assert list(unready.retry) == [built, built_note]
    assert not unready.refused

    # Now the judged span reaches Phoenix; the other one never does.
    to_phoenix = OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces")
    judged = [s for s in held.get_finished_spans() if s.name == "judged"]
    assert to_phoenix.export(judged) is SpanExportResult.SUCCESS
    span_id = f"{span.get_span_context().span_id:016x}"
    phoenix.wait_for("the judged span", lambda: phoenix.spans(project) or None)
    # One request names the missing span; the others are placed by a second one.
    outcome = exporter.export([built, built_orphan, built_note])
    assert isinstance(outcome, PartialFeedbackExport)
    assert list(outcome.retry) == [built_orphan]
    assert not outcome.refused
    placed = {a["name"]: a for a in phoenix.span_annotations(project, [span_id])}
    assert placed["accuracy"]["result"]["score"] == 0.25
    assert placed["feedback.note"]["result"]["label"] == "re-check the citation"
    assert placed["feedback.note"]["metadata"]["key"] == "note"

    updated = built.model_copy(update={"score": 0.75, "comment": "second look"})
    assert exporter.export([updated]) is FeedbackExportResult.SUCCESS
    again = {a["name"]: a for a in phoenix.span_annotations(project, [span_id])}
    assert again["accuracy"]["id"] == placed["accuracy"]["id"]
    assert again["accuracy"]["result"] == {
        "score": 0.75,
        "label": None,
        "explanation": "second look",
    }
    exporter.shutdown()
    to_phoenix.shutdown()  # type: ignore[no-untyped-call]
    provider.shutdown()


def test_an_unreachable_phoenix_is_tried_again_later() -> None:
    exporter = PhoenixFeedbackExporter(endpoint="http://127.0.0.1:9", timeout=1)
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("run"):
        record = record_feedback("k", score=1)
    assert record is not None
    assert exporter.export([record.to_feedback()]) is FeedbackExportResult.RETRY
    exporter.shutdown()
    pipeline.provider.shutdown()


@pytest.mark.parametrize(
    ("source", "kind"),
    [("app", "HUMAN"), ("model", "LLM"), ("api", "CODE"), ("evaluator", "CODE"), (None, "CODE")],
)
def test_annotator_kinds(source: str | None, kind: str) -> None:
    assert annotator_kind(source) == kind


def test_the_command_imports_into_phoenix_and_a_second_import_updates(
    phoenix: PhoenixServer, tmp_path: Path
) -> None:
    project = _project()
    provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    to_phoenix = OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(to_phoenix))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span("answer") as answer,
        tracer.start_as_current_span("retrieve") as retrieve,
    ):
        pass
    provider.shutdown()
    ids = {
        name: (f"{s.get_span_context().trace_id:032x}", f"{s.get_span_context().span_id:016x}")
        for name, s in (("answer", answer), ("retrieve", retrieve))
    }
    source = tmp_path / "judged.csv"
    source.write_text(
        "key,score,value,comment,trace_id,run_id,feedback_source_type\n"
        f"correctness,1,,cites the policy,{ids['answer'][0]},{ids['answer'][1]},model\n"
        f"retrieval_hit,0,miss,,{ids['retrieve'][0]},{ids['retrieve'][1]},api\n"
    )
    command = Path(sys.executable).parent / "otel-feedback"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(command), *args],
            env={**environment, **env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # Phoenix takes OTLP traces but no logs: the doctor says so, and what to use instead.
    otlp = run("doctor", OTEL_EXPORTER_OTLP_ENDPOINT=phoenix.url)
    assert otlp.returncode == 1
    assert f"{phoenix.url}/v1/logs answers HTTP" in otlp.stdout
    assert "takes traces" in otlp.stdout
    assert "OTEL_PYTHON_FEEDBACK_EXPORTER=phoenix" in otlp.stdout
    as_phoenix = {
        "OTEL_PYTHON_FEEDBACK_EXPORTER": "phoenix",
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix.url,
    }
    doctor = run("doctor", **as_phoenix)
    assert doctor.returncode == 0, doctor.stdout

    first = run("import", str(source), **as_phoenix)
    assert first.returncode == 0, first.stderr
    span_ids = [ids["answer"][1], ids["retrieve"][1]]
    placed = phoenix.wait_for(
        "two annotations",
        lambda: len(found := phoenix.span_annotations(project, span_ids)) >= 2 and found,
    )
    second = run("import", str(source), **as_phoenix)
    assert second.returncode == 0, second.stderr
    again = phoenix.span_annotations(project, span_ids)
    assert sorted(a["id"] for a in again) == sorted(a["id"] for a in placed)  # updated, not added
    by_name = {a["name"]: a for a in again}
    assert by_name["correctness"]["span_id"] == ids["answer"][1]
    assert by_name["correctness"]["annotator_kind"] == "LLM"
    assert by_name["correctness"]["result"]["explanation"] == "cites the policy"
    assert by_name["retrieval_hit"]["result"] == {
        "score": 0.0,
        "label": "miss",
        "explanation": None,
    }


def _graphql(phoenix: PhoenixServer, query: str, **variables: str) -> Any:
    request = urllib.request.Request(
        f"{phoenix.url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def _root_span_of(phoenix: PhoenixServer, project: str, trace_id: str) -> Any:
    projects = _graphql(phoenix, "{ projects { edges { node { id name } } } }")
    (project_id,) = [
        edge["node"]["id"]
        for edge in projects["projects"]["edges"]
        if edge["node"]["name"] == project
    ]
    found = _graphql(
        phoenix,
        "query($id: ID!, $trace: ID!) { node(id: $id) { ... on Project {"
        " trace(traceId: $trace) { rootSpan { name } } } } }",
        id=project_id,
        trace=trace_id,
    )
    return found["node"]["trace"]["rootSpan"]


def test_carriers_of_a_trace_seen_elsewhere_stay_in_it_under_its_real_root(
    phoenix: PhoenixServer,
) -> None:
    project = _project()
    resource = Resource.create({"openinference.project.name": project})
    trace_id, child_id = trace_judged_elsewhere(
        lambda: OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces"), resource
    )
    spans = phoenix.wait_for(
        "the four spans", lambda: len(phoenix.spans(project)) == 4 and phoenix.spans(project)
    )
    by_name = _by_name(spans)
    trace_hex = f"{trace_id:032x}"
    assert {s["context"]["trace_id"] for s in spans} == {trace_hex}  # one trace, none dropped
    assert by_name["feedback faithful"]["parent_id"] == f"{child_id:016x}"
    assert by_name["feedback trace_quality"]["parent_id"] is None  # no made-up parent
    # Phoenix takes the earliest-starting span without a parent as the trace's root.
    assert _root_span_of(phoenix, project, trace_hex) == {"name": "root"}
    # Phoenix reads no OpenInference result from span attributes: no annotation appears.
    ids = [s["context"]["span_id"] for s in spans]
    assert phoenix.span_annotations(project, ids) == []
