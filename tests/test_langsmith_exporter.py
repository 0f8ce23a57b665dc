"""LangSmithFeedbackExporter against a loopback stand-in for LangSmith's REST API.

No LangSmith server can run here. The stand-in answers as LangSmith does (taken from the
``langsmith`` client, ``langsmith/client.py``: ``create_feedback`` posts ``/feedback``, a
known feedback id answers 409, ``update_feedback`` is ``PATCH /feedback/{id}`` with score,
value, correction and comment). Every body the exporter sends is validated by the
``langsmith`` package's own models (``FeedbackCreate``; the fields of ``FeedbackBase`` for an
update), and the run ids are checked against
``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from langsmith import schemas as ls
from langsmith.integrations.otel import langsmith_run_id_from_otel_span_id
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ConfigDict, create_model

from otel_feedback import (
    Feedback,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    LangSmithFeedbackExporter,
    create_feedback_token,
    current_run,
    record_feedback,
    record_feedback_from_token,
)
from otel_feedback._export.base import PartialFeedbackExport, RetryLater
from otel_feedback._export.langsmith import (
    ORIGINAL_SCORE,
    WHOLE_TRACE_REFUSED,
    langsmith_source_type,
)
from otel_feedback._recording import roots
from tests.conftest import Pipeline, make_pipeline
from tests.vendor_standin import Seen, StandIn

PROJECT_ID = uuid.UUID("6c1fb0b4-3f7e-4bde-9b7c-6a1d8f2e0c11")
API_KEY = "lsv2_pt_secret-key-for-tests"
# The source types LangSmith's API takes (its OpenAPI SourceType enum).
LANGSMITH_SOURCE_TYPES = {"api", "model", "app", "auto_eval"}


# What the client's update_feedback sends: these fields of LangSmith's own FeedbackBase.
FeedbackUpdate = create_model(  # type: ignore[call-overload]
    "FeedbackUpdate",
    __config__=ConfigDict(extra="forbid"),
    **{
        name: (ls.FeedbackBase.model_fields[name].annotation, None)
        for name in ("score", "value", "correction", "comment")
    },
)


def validate(seen: Seen) -> None:
    """LangSmith's own models of feedback bodies, as its client sends them."""
    assert seen.headers.get("x-api-key") == API_KEY
    if seen.method == "PATCH":
        assert seen.path.startswith("/feedback/")
        uuid.UUID(seen.path.removeprefix("/feedback/"))
        FeedbackUpdate.model_validate(seen.body)
        return
    if seen.path != "/feedback":
        return
    unknown = set(seen.body) - set(ls.FeedbackCreate.model_fields)
    assert not unknown, f"fields LangSmith's FeedbackCreate does not have: {unknown}"
    # The client posts model_dump(exclude_none=True): absent optional ids are nulls.
    ls.FeedbackCreate.model_validate({"run_id": None, "trace_id": None, **seen.body})
    assert seen.body["feedback_source"]["type"] in LANGSMITH_SOURCE_TYPES
    score = seen.body.get("score")
    if isinstance(score, float):  # the API takes 4 decimals at most
        assert score == round(score, 4)


class LangSmithApi:
    """Answers as LangSmith: a feedback id is created once (409 after), then PATCHed."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}

    def __call__(self, seen: Seen) -> tuple[int, Any]:
        if seen.path == "/sessions":
            return 200, [{"id": str(PROJECT_ID), "name": seen.query["name"]}]
        if seen.method == "POST" and seen.path == "/feedback":
            if seen.body["id"] in self.stored:
                return 409, {"detail": "Feedback already exists"}
            self.stored[seen.body["id"]] = dict(seen.body)
            return 200, {"id": seen.body["id"]}
        if seen.method == "PATCH":
            known = self.stored.get(seen.path.removeprefix("/feedback/"))
            if known is None:
                return 404, {"detail": "Feedback not found"}
            known.update(seen.body)
            return 200, {}
        return 404, {"detail": "Not Found"}


@pytest.fixture
def langsmith() -> Iterator[StandIn]:
    server = StandIn(answer=LangSmithApi(), validate=validate)
    yield server
    server.close()
    assert not server.invalid, server.invalid


def stored(server: StandIn) -> dict[str, dict[str, Any]]:
    """What the stand-in holds, by feedback id."""
    api = server.answer
    assert isinstance(api, LangSmithApi)
    return api.stored


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


def root_run_of(span: Any) -> str:
    return str(langsmith_run_id_from_otel_span_id(span.get_span_context().span_id))


def test_feedback_on_a_whole_trace_lands_on_its_root_run(langsmith: StandIn) -> None:
    # The seed's first example: create_feedback(key, score, trace_id=...) right after the
    # trace ended, in the same process.
    pipeline = make_pipeline()
    tracer = pipeline.tracer
    with tracer.start_as_current_span("answer") as root, tracer.start_as_current_span("step"):
        # While the root is still open: known from its start.
        record_feedback("mid_run", score=0.5, trace_id=root.get_span_context().trace_id)
    record_feedback("whole", score=True, trace_id=root.get_span_context().trace_id)
    pipeline.flush()
    batch = pipeline.feedback.get_finished_feedback()
    pipeline.provider.shutdown()

    assert exporter_for(langsmith).export(batch) is FeedbackExportResult.SUCCESS
    posted = {body["key"]: body for body in langsmith.posted("/feedback")}
    for key in ("mid_run", "whole"):
        # LangSmith's trace id is its root run's id: both name the root run.
        assert posted[key]["run_id"] == root_run_of(root)
        assert posted[key]["trace_id"] == root_run_of(root)


def test_whole_trace_feedback_through_a_token_or_handle_finds_the_root_elsewhere(
    langsmith: StandIn, global_pipeline: Pipeline
) -> None:
    secret = "a secret of enough bytes for tokens"
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("answer") as root, tracer.start_as_current_span("step"):
        run = current_run()
        assert run is not None
        whole_token = create_feedback_token(
            trace_id=run.trace_id, key="whole", secret=secret, expires_in=timedelta(hours=1)
        )
        run_token = run.feedback_token(key="on_run", secret=secret)
    assert run.root_run_id == uuid.UUID(root_run_of(root))
    # Another process, which never saw the trace: only the token (or handle) knows its root.
    roots._roots.clear()
    record_feedback_from_token(whole_token, score=1, secret=secret)
    record_feedback_from_token(run_token, score=0, secret=secret)
    roots._told.clear()
    record_feedback("by_handle", score=1, trace_id=run.trace_id, run_id=run.root_run_id)
    global_pipeline.flush()

    exporter = exporter_for(langsmith)
    assert exporter.export(global_pipeline.feedback.get_finished_feedback()) is (
        FeedbackExportResult.SUCCESS
    )
    posted = {body["key"]: body for body in langsmith.posted("/feedback")}
    assert posted["whole"]["run_id"] == root_run_of(root)
    assert posted["whole"]["trace_id"] == root_run_of(root)
    assert posted["on_run"]["run_id"] == str(run.run_id)
    assert posted["by_handle"]["run_id"] == root_run_of(root)


def test_whole_trace_feedback_whose_root_is_unknown_is_refused_with_the_reason(
    langsmith: StandIn,
) -> None:
    # Ids from elsewhere: no span of the trace here, and LangSmith cannot look a run up by
    # an OpenTelemetry trace id.
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("answer") as span:
        record_feedback("on_run", score=1)
    roots._roots.clear()  # the trace was made in another process
    record_feedback("on_trace", score=1, trace_id=span.get_span_context().trace_id)
    pipeline.flush()
    batch = pipeline.feedback.get_finished_feedback()
    pipeline.provider.shutdown()
    whole = next(r for r in batch if r.key == "on_trace")

    result = exporter_for(langsmith).export(batch)

    assert result == PartialFeedbackExport(retry=[], refused=[(whole, WHOLE_TRACE_REFUSED)])
    assert [b["key"] for b in langsmith.posted("/feedback")] == ["on_run"]
    assert "run_id=" in WHOLE_TRACE_REFUSED


def test_a_resubmitted_feedback_id_updates_the_feedback(langsmith: StandIn) -> None:
    (first,) = records(1)
    exporter = exporter_for(langsmith)
    assert exporter.export([first]) is FeedbackExportResult.SUCCESS
    changed = first.model_copy(update={"score": 0, "comment": "changed my mind"})
    assert exporter.export([changed]) is FeedbackExportResult.SUCCESS
    # Sent again as it is (a re-import): the same state, no error.
    assert exporter.export([changed]) is FeedbackExportResult.SUCCESS

    patches = [s for s in langsmith.seen if s.method == "PATCH"]
    assert [s.path for s in patches] == [f"/feedback/{first.id}"] * 2
    assert patches[0].body == {
        "score": 0,
        "value": None,
        "correction": None,
        "comment": "changed my mind",
    }
    (held,) = stored(langsmith).values()
    assert (held["id"], held["score"], held["comment"]) == (str(first.id), 0, "changed my mind")


def test_a_resubmitted_token_updates_its_feedback(
    langsmith: StandIn, global_pipeline: Pipeline
) -> None:
    secret = "a secret of enough bytes for tokens"
    with global_pipeline.tracer.start_as_current_span("answer"):
        token = create_feedback_token(key="user_rating", secret=secret)
    exporter = exporter_for(langsmith)
    for score, comment in ((1, "great"), (0, None)):
        record_feedback_from_token(token, score=score, comment=comment, secret=secret)
        global_pipeline.flush()
        assert exporter.export(global_pipeline.feedback.get_finished_feedback()[-1:]) is (
            FeedbackExportResult.SUCCESS
        )
    (held,) = stored(langsmith).values()
    assert (held["score"], held["comment"]) == (0, None)


def test_a_patch_for_feedback_langsmith_lost_is_retried() -> None:
    # 409 then 404: LangSmith has the id but not (yet) the run's feedback: tried again.
    server = StandIn(
        answer=lambda s: (409, {}) if s.method == "POST" else (404, {}), validate=validate
    )
    try:
        exporter = exporter_for(server, project_id=PROJECT_ID)
        batch = records(1)
        assert exporter.export(batch) == PartialFeedbackExport(retry=batch, refused=[])
    finally:
        server.close()


def test_float_scores_go_with_four_decimals_and_the_exact_score_kept(
    langsmith: StandIn,
) -> None:
    (record,) = records(1)
    precise = record.model_copy(update={"score": 0.123456789})
    assert exporter_for(langsmith).export([precise]) is FeedbackExportResult.SUCCESS
    (body,) = langsmith.posted("/feedback")
    assert body["score"] == 0.1235
    assert body["feedback_source"]["metadata"][ORIGINAL_SCORE] == 0.123456789


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
