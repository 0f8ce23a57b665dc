"""LangSmithFeedbackExporter against a loopback stand-in for LangSmith's REST API.

No LangSmith server can run here. Every body the exporter posts is validated by the
``langsmith`` package's own ``FeedbackCreate`` model, and the run ids are checked against
``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langsmith import schemas as ls
from langsmith.integrations.otel import langsmith_run_id_from_otel_span_id
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    LangSmithFeedbackExporter,
    record_feedback,
)
from otel_feedback._export.base import PartialFeedbackExport, RetryLater
from otel_feedback._export.langsmith import WHOLE_TRACE_REFUSED, langsmith_source_type
from tests.conftest import Pipeline, make_pipeline
from tests.vendor_standin import Seen, StandIn

PROJECT_ID = uuid.UUID("6c1fb0b4-3f7e-4bde-9b7c-6a1d8f2e0c11")
API_KEY = "lsv2_pt_secret-key-for-tests"
# The source types LangSmith's API takes (its OpenAPI SourceType enum).
LANGSMITH_SOURCE_TYPES = {"api", "model", "app", "auto_eval"}


def validate(seen: Seen) -> None:
    """LangSmith's own model of a feedback-create body, as its client posts it."""
    assert seen.headers.get("x-api-key") == API_KEY
    if seen.path != "/feedback":
        return
    unknown = set(seen.body) - set(ls.FeedbackCreate.model_fields)
    assert not unknown, f"fields LangSmith's FeedbackCreate does not have: {unknown}"
    # The client posts model_dump(exclude_none=True): absent optional ids are nulls.
    ls.FeedbackCreate.model_validate({"run_id": None, "trace_id": None, **seen.body})
    assert seen.body["feedback_source"]["type"] in LANGSMITH_SOURCE_TYPES


def langsmith_api(seen: Seen) -> tuple[int, Any]:
    if seen.path == "/sessions":
        return 200, [{"id": str(PROJECT_ID), "name": seen.query["name"]}]
    return 200, {"id": seen.body["id"]}


@pytest.fixture
def langsmith() -> Iterator[StandIn]:
    server = StandIn(answer=langsmith_api, validate=validate)
    yield server
    server.close()
    assert not server.invalid, server.invalid


def exporter_for(server: StandIn, **options: Any) -> LangSmithFeedbackExporter:
    return LangSmithFeedbackExporter(
        endpoint=server.url, api_key=API_KEY, project="support-bot", **options
    )


def records(count: int = 3) -> list[Feedback]:
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("answer"):
        for i in range(count):
            record_feedback(f"key{i}", score=i)
    pipeline.flush()
    found = pipeline.feedback.get_finished_feedback()
    pipeline.provider.shutdown()
    return list(found)


def test_each_record_lands_on_its_run_with_the_project_id(langsmith: StandIn) -> None:
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(exporter_for(langsmith))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("answer") as answer:
        with tracer.start_as_current_span("retrieve") as retrieve:
            record_feedback("retrieval_hit", score=True, feedback_source_type="ci")
        record_feedback(
            "correctness",
            score=0.75,
            comment="cites the policy",
            feedback_source_type="model",
            source_info={"model": "judge-1"},
        )
        record_feedback(
            "user_rating",
            value="thumbs_up",
            score=1,
            feedback_source_type="app",
            user_id="u-42",
            correction={"answer": "42"},
        )
        record_feedback("review", score=0, feedback_source_type="reviewer")
    assert processor.force_flush(10_000)
    provider.shutdown()

    lookups = [s for s in langsmith.seen if s.path == "/sessions"]
    assert [(s.method, s.query["name"], s.query["limit"]) for s in lookups] == [
        ("GET", "support-bot", "1")
    ]
    posted = {body["key"]: body for body in langsmith.posted("/feedback")}
    assert set(posted) == {"retrieval_hit", "correctness", "user_rating", "review"}
    answer_run = langsmith_run_id_from_otel_span_id(answer.get_span_context().span_id)
    retrieve_run = langsmith_run_id_from_otel_span_id(retrieve.get_span_context().span_id)
    assert posted["retrieval_hit"]["run_id"] == str(retrieve_run)
    for key in ("correctness", "user_rating", "review"):
        assert posted[key]["run_id"] == str(answer_run)
    for body in posted.values():
        assert body["session_id"] == str(PROJECT_ID)
        # LangSmith's trace_id is its root run's id, not the OpenTelemetry trace id.
        assert "trace_id" not in body
        assert None not in body.values()
    assert posted["correctness"]["feedback_source"] == {
        "type": "model",
        "metadata": {"model": "judge-1"},
    }
    assert posted["correctness"]["comment"] == "cites the policy"
    assert posted["correctness"]["score"] == 0.75
    assert posted["user_rating"]["feedback_source"] == {
        "type": "app",
        "metadata": {},
        "user_id": "u-42",
    }
    assert posted["user_rating"]["value"] == "thumbs_up"
    assert posted["user_rating"]["correction"] == {"answer": "42"}
    assert posted["review"]["feedback_source"]["type"] == "app"
    assert posted["review"]["feedback_source"]["metadata"] == {
        "otel_feedback.source_type": "reviewer"
    }
    assert posted["retrieval_hit"]["feedback_source"]["type"] == "api"
    assert posted["retrieval_hit"]["score"] is True


def test_the_project_is_looked_up_once(langsmith: StandIn) -> None:
    exporter = exporter_for(langsmith)
    assert exporter.export(records(2)) is FeedbackExportResult.SUCCESS
    assert exporter.export(records(2)) is FeedbackExportResult.SUCCESS
    assert [s.path for s in langsmith.seen].count("/sessions") == 1
    assert len(langsmith.posted("/feedback")) == 4


def test_a_given_project_id_needs_no_lookup(langsmith: StandIn) -> None:
    exporter = exporter_for(langsmith, project_id=uuid.UUID(int=7))
    assert exporter.export(records(1)) is FeedbackExportResult.SUCCESS
    assert [s.path for s in langsmith.seen] == ["/feedback"]
    assert langsmith.posted("/feedback")[0]["session_id"] == str(uuid.UUID(int=7))


def test_a_project_not_there_yet_is_retried() -> None:
    # The project appears with the first trace sent to it.
    server = StandIn(answer=lambda s: (200, []) if s.path == "/sessions" else (200, {}))
    try:
        assert exporter_for(server).export(records(2)) is FeedbackExportResult.RETRY
        assert server.posted("/feedback") == []
    finally:
        server.close()


def test_a_busy_project_lookup_says_when_to_come_back() -> None:
    server = StandIn(answer=lambda _s: (429, {"detail": "slow down"}, {"Retry-After": "12"}))
    try:
        assert exporter_for(server).export(records(2)) == RetryLater(after_s=12.0)
        assert [s.path for s in server.seen] == ["/sessions"]
    finally:
        server.close()


def test_feedback_on_a_whole_trace_is_refused_with_the_reason(langsmith: StandIn) -> None:
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("answer") as span:
        record_feedback("on_run", score=1)
    record_feedback("on_trace", score=1, trace_id=span.get_span_context().trace_id)
    pipeline.flush()
    batch = pipeline.feedback.get_finished_feedback()
    pipeline.provider.shutdown()
    whole = next(r for r in batch if r.key == "on_trace")

    result = exporter_for(langsmith).export(batch)

    assert result == PartialFeedbackExport(retry=[], refused=[(whole, WHOLE_TRACE_REFUSED)])
    assert [b["key"] for b in langsmith.posted("/feedback")] == ["on_run"]


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("api", "api"),
        ("model", "model"),
        ("app", "app"),
        ("auto_eval", "auto_eval"),
        ("human", "app"),
        ("user", "app"),
        ("llm", "model"),
        ("judge", "model"),
        ("ci-check", "api"),
        (None, "api"),
    ],
)
def test_source_types_are_ones_langsmith_takes(given: str | None, sent: str) -> None:
    assert langsmith_source_type(given) == sent


def test_the_api_key_is_never_shown(langsmith: StandIn, caplog: pytest.LogCaptureFixture) -> None:
    exporter = exporter_for(langsmith)
    assert API_KEY not in repr(exporter)
    with caplog.at_level(logging.DEBUG, logger="otel_feedback"):
        down = LangSmithFeedbackExporter(
            endpoint="http://127.0.0.1:1", api_key=API_KEY, project_id=PROJECT_ID, timeout=1
        )
        assert down.export(records(1)) is FeedbackExportResult.RETRY
    assert caplog.records  # the failure is logged at DEBUG...
    assert API_KEY not in caplog.text  # ...without the key


def test_a_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    with pytest.raises(ValueError, match="LANGSMITH_API_KEY"):
        LangSmithFeedbackExporter()


def test_the_environment_configures_it(langsmith: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_ENDPOINT", langsmith.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", API_KEY)
    monkeypatch.setenv("LANGSMITH_PROJECT", "from-env")
    assert LangSmithFeedbackExporter().export(records(1)) is FeedbackExportResult.SUCCESS
    assert langsmith.seen[0].query["name"] == "from-env"


def test_a_span_that_names_its_langsmith_ids_gets_its_feedback_there(
    langsmith: StandIn, global_pipeline: Pipeline
) -> None:
    own_run, own_trace = uuid.uuid4(), uuid.uuid4()
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("answer") as span:
        record_feedback("live", score=1)
        # Set after the feedback: what counts is what the span carries when it ends.
        span.set_attribute("langsmith.span.id", str(own_run))
        span.set_attribute("langsmith.trace.id", str(own_trace))
    with tracer.start_as_current_span("plain") as plain:
        record_feedback("plain", score=1)
        plain.set_attribute("langsmith.span.id", "not-a-uuid")
    with tracer.start_as_current_span("nil") as nil:
        record_feedback("nil", score=1)
        nil.set_attribute("langsmith.span.id", str(uuid.UUID(int=0)))
    (ended,) = [s for s in global_pipeline.spans.get_finished_spans() if s.name == "answer"]
    record_feedback("late", score=0, span=ended)
    global_pipeline.flush()

    exporter = exporter_for(langsmith)
    assert exporter.export(global_pipeline.feedback.get_finished_feedback()) is (
        FeedbackExportResult.SUCCESS
    )
    posted = {body["key"]: body for body in langsmith.posted("/feedback")}
    for key in ("live", "late"):
        assert posted[key]["run_id"] == str(own_run)
        assert posted[key]["trace_id"] == str(own_trace)
    # An override that is not a UUID is not LangSmith's: the span id's rule applies.
    plain_run = langsmith_run_id_from_otel_span_id(plain.get_span_context().span_id)
    assert posted["plain"]["run_id"] == str(plain_run)
    assert "trace_id" not in posted["plain"]
    nil_run = langsmith_run_id_from_otel_span_id(nil.get_span_context().span_id)
    assert posted["nil"]["run_id"] == str(nil_run)  # the nil UUID names no run
