"""Property-based: whatever is passed, a record that every exporter can write, or a ValueError
naming the argument. Never another exception."""

from __future__ import annotations

import inspect
import io
import json
import math
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk.resources import Resource

from otel_feedback import (
    ConsoleFeedbackExporter,
    Feedback,
    FeedbackExportResult,
    InvalidFeedbackError,
    JsonlFeedbackExporter,
    record_feedback,
)
from otel_feedback._codec import encode
from otel_feedback._decode import decode
from otel_feedback._export.otlp import to_log_record
from otel_feedback._ids import ns_from_datetime
from tests.conftest import Pipeline

ARGUMENTS = list(inspect.signature(record_feedback).parameters)


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


class Unshowable:
    """Its repr and str raise: an argument error must still name the argument."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class UnshowableText(str):
    __slots__ = ()

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(),  # nan and infinities included
    st.text(max_size=40),
    st.binary(max_size=10),
    st.uuids(),
    st.uuids().map(str),
    st.datetimes(),
    st.just(Opaque()),
    st.builds(Unshowable),
    st.text(max_size=5).map(UnshowableText),
    st.sampled_from(["api", "model", "app", "", "continuous", "0" * 32, "ab" * 8]),
)
anything: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=3),
    ),
    max_leaves=6,
)
configs = st.one_of(
    anything,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["continuous", "categorical", "freeform", "stars"])},
        optional={
            "min": st.floats(),
            "max": st.floats(),
            "categories": st.lists(
                st.fixed_dictionaries({"value": st.floats()}, optional={"label": st.text()}),
                max_size=3,
            ),
        },
    ),
)
targets = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"trace_id": anything}),
    st.fixed_dictionaries({"trace_id": anything, "run_id": anything}),
    st.fixed_dictionaries({"traceparent": anything}),
    st.fixed_dictionaries({"span": anything}),
    st.fixed_dictionaries({"run_id": anything}),
)


json_objects = st.dictionaries(
    st.text(max_size=5),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=5,
    ),
    max_size=3,
)
ids = st.uuids() | st.uuids().map(str)
# Plausible values, so that many calls make records and the writers are exercised too.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "key": st.text(min_size=1, max_size=30),
    "score": st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 63) - 1)
    | st.floats(allow_nan=False, allow_infinity=False),
    "value": st.none()
    | st.text(max_size=20)
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_objects,
    "comment": st.none() | st.text(max_size=50),
    "correction": st.none() | st.text(max_size=20) | json_objects,
    "source_info": st.none() | json_objects,
    "feedback_source_type": st.sampled_from(["api", "model", "app", "evaluator"]),
    "source_run_id": ids,
    "feedback_id": ids,
    "feedback_config": st.just({"type": "freeform"}),
    "comparative_experiment_id": ids,
    "feedback_group_id": ids,
    "extra": st.none() | json_objects,
    "error": st.none() | st.booleans(),
    "session_id": ids,
    "start_time": st.none() | st.datetimes(),
    "user_id": st.none() | ids | st.text(min_size=1, max_size=10),
}


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), unique=True, max_size=8))
    arguments: dict[str, Any] = {}
    for name in chosen:
        wild = configs if name == "feedback_config" else anything
        arguments[name] = draw(PLAUSIBLE[name] if draw(st.integers(0, 9)) < 8 else wild)
    arguments.update(draw(targets))
    return arguments


def _writable_everywhere(record: Feedback, tmp: Path) -> None:
    text = record.model_dump_json()
    # The JSON form is the record alone: the judged span's run attributes stay beside it.
    back = Feedback.model_validate_json(text)
    assert back.run_attributes == {}
    assert back.__dict__ == record.__dict__
    assert json.loads(text)["key"] == record.key
    out = io.StringIO()
    assert ConsoleFeedbackExporter(out=out).export([record]) is FeedbackExportResult.SUCCESS
    path = tmp / "fuzz.jsonl"
    assert JsonlFeedbackExporter(path).export([record]) is FeedbackExportResult.SUCCESS
    encode_logs([to_log_record(record, Resource.create({}))]).SerializeToString()
    assert record.trace_id is not None
    target = {
        "otel_feedback.trace_id": f"{record.trace_id.int:032x}",
        "otel_feedback.run_id": f"{record.run_id.int:016x}" if record.run_id else "",
    }
    rebuilt = decode(
        encode(record) | target,
        timestamp_ns=ns_from_datetime(record.created_at),
        trace_id=1,
        span_id=1,
    )
    assert rebuilt == record


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls())
def test_a_record_or_a_value_error_naming_the_argument(
    global_pipeline: Pipeline, tmp_path: Path, arguments: dict[str, Any]
) -> None:
    refused: InvalidFeedbackError | None = None
    with global_pipeline.tracer.start_as_current_span("fuzzed"):
        try:
            record = record_feedback(**arguments)
        except InvalidFeedbackError as error:  # any other exception fails the test
            refused = error
    if refused is not None:
        event("refused")
        assert isinstance(refused, ValueError)
        assert refused.field.split(".")[0] in ARGUMENTS, refused
        assert str(refused).startswith(refused.field + ": ")
        return
    event("recorded")
    assert record is not None  # a span is current, so a record is expected
    assert record is not None
    built = record.to_feedback()
    _writable_everywhere(built, tmp_path)
    if isinstance(built.score, float):
        assert math.isfinite(built.score)
    assert record.id is not None
    assert isinstance(record.id, uuid.UUID)
