from __future__ import annotations

import json
import logging
import math
import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import pytest

from otel_feedback import Feedback, InvalidFeedbackError, record_feedback
from otel_feedback import _attributes as a
from tests.conftest import Pipeline

RUN = "62104630-c7f5-41dc-8ee2-0acee5c14224"


def test_event_carries_the_semconv_attributes(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("answer_question") as span:
        record = record_feedback(
            "correctness", score=0.5, value="partly", comment="half right", error=True
        )
    assert record is not None
    (event,) = pipeline.spans.get_finished_spans()[0].events
    assert event.name == "gen_ai.evaluation.result"
    attrs = dict(event.attributes or {})
    assert attrs["gen_ai.evaluation.name"] == "correctness"
    assert attrs["gen_ai.evaluation.score.value"] == 0.5
    assert attrs["gen_ai.evaluation.score.label"] == "partly"
    assert attrs["gen_ai.evaluation.explanation"] == "half right"
    assert attrs["error.type"] == "_OTHER"
    assert attrs["otel_feedback.id"] == str(record.id)
    ours = {k for k in attrs if not k.startswith(("gen_ai.evaluation.", "error.type"))}
    assert all(k.startswith("otel_feedback.") for k in ours)
    assert event.timestamp is not None
    assert span.get_span_context().span_id != 0


def test_record_ids_are_the_span_ids_read_as_uuids(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("root") as span:
        record = record_feedback("user_feedback", score=1)
    assert record is not None
    ctx = span.get_span_context()
    assert record.trace_id == uuid.UUID(int=ctx.trace_id)
    assert record.run_id == uuid.UUID(int=ctx.span_id)
    assert record.run_id.bytes[:8] == bytes(8)  # right-aligned, as LangSmith ingests OTLP


def test_record_matches_the_arguments(pipeline: Pipeline) -> None:
    feedback_id = uuid.uuid4()
    start = datetime(2024, 5, 5, 23, 23, 11, tzinfo=timezone.utc)
    with pipeline.tracer.start_as_current_span("run"):
        record = record_feedback(
            "correctness",
            score=1,
            value={"label": "good", "n": 3},
            comment="I gave this score because the answer was correct.",
            correction={"answer": "42"},
            source_info={"judge": "gpt"},
            feedback_source_type="model",
            source_run_id=RUN,
            feedback_id=feedback_id,
            feedback_config={"type": "continuous", "min": 0, "max": 1},
            comparative_experiment_id=str(uuid.UUID(int=7)),
            feedback_group_id=uuid.UUID(int=8),
            extra={"batch": [1, 2]},
            error=False,
            session_id=str(uuid.UUID(int=9)),
            start_time=start,
            user_id="ad52b092-1346-42f4-a934-6e5521562fab",
        )
    assert record is not None
    built = record.to_feedback()
    assert record.id == feedback_id
    assert record.key == "correctness"
    assert built.score == 1
    assert type(built.score) is int
    assert built.value == {"label": "good", "n": 3}
    assert built.correction == {"answer": "42"}
    assert built.feedback_source is not None
    assert built.feedback_source.type == "model"
    assert built.feedback_source.metadata == {
        "judge": "gpt",
        "__run": {"run_id": RUN},
    }
    assert built.feedback_source.user_id == uuid.UUID("ad52b092-1346-42f4-a934-6e5521562fab")
    assert built.feedback_config is not None
    assert built.feedback_config.max == 1
    assert built.comparative_experiment_id == uuid.UUID(int=7)
    assert built.feedback_group_id == uuid.UUID(int=8)
    assert built.session_id == uuid.UUID(int=9)
    assert built.extra == {"batch": [1, 2]}
    assert built.error is False
    assert built.start_time == start
    assert record.created_at == built.modified_at
    assert record.created_at.tzinfo is not None
    pipeline.flush()
    assert pipeline.feedback.get_finished_feedback() == (built,)


def test_source_info_is_copied_not_mutated(pipeline: Pipeline) -> None:
    info = {"judge": "gpt"}
    with pipeline.tracer.start_as_current_span("run"):
        record_feedback("k", score=1, source_info=info, source_run_id=RUN)
    assert info == {"judge": "gpt"}


def test_an_explicit_run_in_source_info_wins_over_source_run_id(pipeline: Pipeline) -> None:
    mine = {"__run": {"run_id": str(uuid.UUID(int=1))}}
    with pipeline.tracer.start_as_current_span("run"):
        record = record_feedback("k", score=1, source_info=mine, source_run_id=RUN)
    assert record is not None
    built = record.to_feedback()
    assert built.feedback_source is not None
    assert built.feedback_source.metadata == mine


def test_source_type_accepts_an_enum(pipeline: Pipeline) -> None:
    class SourceType(Enum):
        MODEL = "model"

    with pipeline.tracer.start_as_current_span("run"):
        record = record_feedback("k", score=1, feedback_source_type=SourceType.MODEL)
    assert record is not None
    built = record.to_feedback()
    assert built.feedback_source is not None
    assert built.feedback_source.type == "model"


@pytest.mark.parametrize(
    ("score", "kind"), [(True, bool), (False, bool), (1, int), (1.0, float), (0, int), (-3, int)]
)
def test_score_types_stay_distinct_through_export(
    pipeline: Pipeline, score: bool | int | float, kind: type
) -> None:
    with pipeline.tracer.start_as_current_span("run"):
        record_feedback("k", score=score)
    pipeline.flush()
    (exported,) = pipeline.feedback.get_finished_feedback()
    assert type(exported.score) is kind
    assert exported.score == score
    assert json.loads(exported.model_dump_json())["score"] == score
    assert type(json.loads(exported.model_dump_json())["score"]) is kind


@pytest.mark.parametrize(
    "value", ["thumbs_up", 3, 2.5, True, {"a": {"b": [1, None, "x"]}}, {}, None]
)
def test_values_round_trip_through_export(pipeline: Pipeline, value: Any) -> None:
    with pipeline.tracer.start_as_current_span("run"):
        record_feedback("k", value=value)
    pipeline.flush()
    (exported,) = pipeline.feedback.get_finished_feedback()
    assert exported.value == value
    assert type(exported.value) is type(value)


def test_default_record_has_the_seed_shape(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("run"):
        record = record_feedback()
    assert record is not None
    built = record.to_feedback()
    data = json.loads(built.model_dump_json())
    assert set(data) == {
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
        "feedback_source",
    }
    assert data["key"] == "unnamed"
    assert data["feedback_source"] == {"type": "api", "metadata": None, "user_id": None}


def test_no_recording_span_warns_counted_and_returns_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from otel_feedback._recording import record

    caplog.set_level(logging.WARNING, logger="otel_feedback")
    record._not_recorded.flush()
    assert record_feedback("k", score=1) is None
    assert record_feedback("k", score=2) is None
    assert record_feedback("k", score=3) is None
    warnings = [r.getMessage() for r in caplog.records if "no span current" in r.getMessage()]
    assert len(warnings) <= 1  # rate-limited: the first at once, the rest summed
    record._not_recorded.flush()  # as at exit
    counted = [r.getMessage() for r in caplog.records if "no span current" in r.getMessage()]
    assert sum(int(m.split()[1]) for m in counted) >= 2  # every call counted


class Unserialisable:
    pass


BAD_ARGUMENTS: list[tuple[dict[str, Any], str, str]] = [
    ({"score": math.nan}, "score", "finite"),
    ({"score": math.inf}, "score", "finite"),
    ({"score": -math.inf}, "score", "finite"),
    ({"score": "1"}, "score", "bool, int or float"),
    ({"score": 1 << 64}, "score", "64-bit"),
    ({"key": ""}, "key", "at least 1 character"),
    ({"key": 3}, "key", "string"),
    ({"value": Unserialisable()}, "value", "must be a str"),
    ({"value": {"x": Unserialisable()}}, "value", "JSON"),
    ({"value": math.nan}, "value", "finite"),
    ({"value": {"x": math.nan}}, "value", "JSON"),
    ({"correction": {"x": {1, 2}}}, "correction", "JSON"),
    ({"correction": 5}, "correction", "dict or a str"),
    ({"value": {"pair": (1, 2)}}, "value", "JSON types only"),
    ({"extra": {1: "one"}}, "extra", "JSON types only"),
    ({"key": "k" * 257}, "key", "at most 256"),
    ({"comment": "c" * 65_537}, "comment", "at most 65536"),
    ({"value": "v" * 65_537}, "value", "at most 65536"),
    ({"value": {"big": "x" * 262_144}}, "value", "too large"),
    ({"correction": "x" * 262_144}, "correction", "too large"),
    ({"extra": {"when": datetime.now()}}, "extra", "JSON"),
    ({"extra": [1]}, "extra", "dict"),
    ({"source_info": {"x": Unserialisable()}}, "source_info", "JSON"),
    ({"source_info": 3}, "source_info", "mapping"),
    ({"feedback_id": "not-a-uuid"}, "feedback_id", "UUID"),
    ({"source_run_id": "1234"}, "source_run_id", "UUID"),
    ({"session_id": "zz"}, "session_id", "UUID"),
    ({"comparative_experiment_id": 5}, "comparative_experiment_id", "UUID"),
    ({"feedback_group_id": "x"}, "feedback_group_id", "UUID"),
    ({"user_id": 5}, "user_id", "UUID or a string"),
    ({"feedback_source_type": ""}, "feedback_source_type", "non-empty"),
    ({"error": "yes"}, "error", "boolean"),
    ({"comment": 3}, "comment", "string"),
    ({"start_time": "yesterday"}, "start_time", "datetime"),
    ({"feedback_config": {"type": "stars"}}, "feedback_config.type", "continuous"),
    ({"feedback_config": {"type": "continuous", "minimum": 0}}, "feedback_config.minimum", ""),
    (
        {"score": 6, "feedback_config": {"type": "continuous", "min": 0, "max": 5}},
        "score",
        "above feedback_config max",
    ),
    (
        {"score": -1, "feedback_config": {"type": "continuous", "min": 0}},
        "score",
        "below feedback_config min",
    ),
    (
        {
            "score": 2,
            "feedback_config": {
                "type": "categorical",
                "categories": [{"value": 0, "label": "bad"}, {"value": 1, "label": "good"}],
            },
        },
        "score",
        "categories",
    ),
]


@pytest.mark.parametrize(("arguments", "field", "reason"), BAD_ARGUMENTS)
def test_bad_input_names_the_field(
    pipeline: Pipeline, arguments: dict[str, Any], field: str, reason: str
) -> None:
    with (
        pipeline.tracer.start_as_current_span("run"),
        pytest.raises(InvalidFeedbackError) as caught,
    ):
        record_feedback(**({"key": "k"} | arguments))
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert reason in str(caught.value)
    pipeline.flush()
    assert pipeline.feedback.get_finished_feedback() == ()
    assert pipeline.spans.get_finished_spans()[0].events == ()


def test_bad_input_raises_even_when_not_sampled() -> None:
    with pytest.raises(InvalidFeedbackError, match=r"^score: "):
        record_feedback("k", score=math.nan)


def test_scores_inside_the_config_are_accepted(pipeline: Pipeline) -> None:
    categorical = {"type": "categorical", "categories": [{"value": 0}, {"value": 1}]}
    with pipeline.tracer.start_as_current_span("run"):
        assert record_feedback("k", score=5, feedback_config={"type": "continuous", "max": 5})
        assert record_feedback("k", score=1, feedback_config=categorical)
        assert record_feedback("k", score=0.3, feedback_config={"type": "freeform"})


def test_recorded_feedback_and_its_record_are_read_only(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("run"):
        recorded = record_feedback("k", score=1)
    assert recorded is not None
    with pytest.raises(AttributeError):
        recorded.key = "other"  # type: ignore[misc]
    record = recorded.to_feedback()
    assert isinstance(record, Feedback)
    with pytest.raises(ValueError, match="frozen"):
        record.score = 2  # type: ignore[misc]


def test_attribute_names_live_in_one_place() -> None:
    names = [getattr(a, n) for n in a.__all__ if n.startswith("ATTR_")]
    assert len(names) == len(set(names))
    foreign = (
        "gen_ai.evaluation.",
        "error.",
        "gen_ai.response.",
        "gen_ai.agent.",
        "langsmith.",
        "openinference.",
    )
    assert all(n.startswith((a.PREFIX, *foreign)) for n in names)
