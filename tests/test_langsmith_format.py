"""The real ``langsmith`` package is the oracle of the record format."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from langsmith import Client
from langsmith import schemas as ls

from otel_feedback import Feedback, record_feedback
from tests.conftest import Pipeline
from tests.strategies import records

# The example record of LangSmith's "Feedback data format" page, verbatim.
SEED = """{
"created_at": "2024-05-05T23:23:11.077838",
"modified_at": "2024-05-05T23:23:11.232962",
"session_id": "c919298b-0af2-4517-97a2-0f98ed4a48f8",
"run_id": "e26174e5-2190-4566-b970-7c3d9a621baa",
"key": "correctness",
"score": 1.0,
"value": null,
"comment": "I gave this score because the answer was correct.",
"correction": null,
"id": "62104630-c7f5-41dc-8ee2-0acee5c14224",
"feedback_source": {
"type": "app",
"metadata": null,
"user_id": "ad52b092-1346-42f4-a934-6e5521562fab"
}
}"""


def _same_fields(ours: Feedback, theirs: ls.Feedback) -> None:
    for name in (
        "id",
        "created_at",
        "modified_at",
        "session_id",
        "run_id",
        "trace_id",
        "key",
        "score",
        "value",
        "comment",
        "correction",
        "comparative_experiment_id",
        "feedback_group_id",
        "extra",
        "start_time",
    ):
        assert getattr(theirs, name) == getattr(ours, name), name
        assert type(getattr(theirs, name)) is type(getattr(ours, name)), name
    if ours.feedback_source is None:
        assert theirs.feedback_source is None
    else:
        assert theirs.feedback_source is not None
        assert theirs.feedback_source.type == ours.feedback_source.type
        assert theirs.feedback_source.metadata == ours.feedback_source.metadata
        assert str(theirs.feedback_source.user_id) == str(ours.feedback_source.user_id)


def test_the_seed_record_reads_into_ours_and_back() -> None:
    record = Feedback.model_validate_json(SEED)
    assert record.key == "correctness"
    assert record.score == 1.0
    assert type(record.score) is float
    assert record.feedback_source is not None
    assert record.feedback_source.type == "app"
    data = json.loads(record.model_dump_json())
    seed = json.loads(SEED)
    assert set(data) == set(seed) | {"trace_id"}
    for key in ("id", "session_id", "run_id", "key", "score", "value", "comment", "correction"):
        assert data[key] == seed[key], key
    assert data["feedback_source"] == seed["feedback_source"]
    assert data["created_at"] == "2024-05-05T23:23:11.077838Z"


def test_a_recorded_feedback_validates_as_langsmith_feedback(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("run"):
        record = record_feedback(
            "correctness",
            score=1,
            value={"verdict": "correct"},
            comment="matches",
            correction={"answer": "42"},
            source_info={"model": "judge-1"},
            feedback_source_type="model",
            source_run_id=uuid.uuid4(),
            comparative_experiment_id=uuid.uuid4(),
            feedback_group_id=uuid.uuid4(),
            extra={"tags": ["a"]},
            feedback_config={"type": "continuous", "min": 0, "max": 1},
            error=False,
            session_id=uuid.uuid4(),
            start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
        )
    assert record is not None
    built = record.to_feedback()
    theirs = ls.Feedback.model_validate_json(built.model_dump_json())
    _same_fields(built, theirs)
    create = ls.FeedbackCreate.model_validate_json(built.model_dump_json())
    assert create.feedback_config == {"type": "continuous", "min": 0.0, "max": 1.0}
    assert create.error is False


@settings(max_examples=200, deadline=None)
@given(records())
def test_every_record_validates_as_langsmith_feedback(record: Feedback) -> None:
    _same_fields(record, ls.Feedback.model_validate_json(record.model_dump_json()))


class _LangSmithStandIn:
    """A loopback HTTP server that answers the langsmith client and keeps what it posts."""

    def __init__(self) -> None:
        self.posted: list[dict[str, object]] = []
        posted = self.posted

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self) -> None:
                self._reply()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/feedback":
                    posted.append(json.loads(body))
                self._reply()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def test_same_arguments_make_the_same_record_as_langsmith_create_feedback(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    arguments: dict[str, Any] = {
        "key": "correctness",
        "score": 1,
        "value": {"verdict": "correct"},
        "comment": "matches",
        "correction": {"answer": "42"},
        "source_info": {"model": "judge-1"},
        "feedback_source_type": "model",
        "source_run_id": uuid.UUID(int=9),
        "comparative_experiment_id": uuid.UUID(int=10),
        "feedback_group_id": uuid.UUID(int=11),
        "extra": {"tags": ["a"]},
        "feedback_config": {"type": "continuous", "min": 0, "max": 1},
        "error": True,
        "session_id": uuid.UUID(int=3),
        "start_time": datetime(2024, 1, 1, tzinfo=timezone.utc),
    }
    with pipeline.tracer.start_as_current_span("run") as span:
        ours = record_feedback(**arguments)
    assert ours is not None
    ours_built = ours.to_feedback()
    stand_in = _LangSmithStandIn()
    client = Client(api_url=stand_in.url, api_key="test", auto_batch_tracing=False)
    ids = span.get_span_context()
    client.create_feedback(
        run_id=uuid.UUID(int=ids.span_id), trace_id=uuid.UUID(int=ids.trace_id), **arguments
    )
    client.session.close()
    stand_in.server.shutdown()
    stand_in.server.server_close()
    (theirs,) = stand_in.posted
    mine = json.loads(ours_built.model_dump_json())
    # Their request also carries transport flags; the record fields must agree one by one.
    for field in set(mine) - {"id", "created_at", "modified_at"}:
        assert _normal(mine[field]) == _normal(theirs.get(field)), field
    assert set(theirs) - set(mine) <= {"extend_trace_retention"}
    assert set(mine) - set(theirs) == set()


def _normal(value: object) -> object:
    """Datetimes as instants: LangSmith writes +00:00 where pydantic writes Z."""
    if isinstance(value, str) and value.endswith(("Z", "+00:00")) and "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    return value
