"""Hypothesis strategies for valid feedback records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from hypothesis import strategies as st

from otel_feedback import Feedback

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
scores = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)
values = (
    st.none()
    | st.text(max_size=30)
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_objects
)
times = st.datetimes(timezones=st.just(timezone.utc))
# Event timestamps are nanoseconds since the epoch: created_at cannot precede it.
created = st.datetimes(min_value=datetime(1971, 1, 1), timezones=st.just(timezone.utc))
trace_ids = st.integers(1, (1 << 128) - 1).map(lambda i: UUID(int=i))
run_ids = st.integers(1, (1 << 64) - 1).map(lambda i: UUID(int=i))
config = st.none() | st.just({"type": "freeform"})
sources = st.none() | st.fixed_dictionaries(
    {
        "type": st.sampled_from(["api", "model", "app", "evaluator"]),
        "metadata": st.none() | json_objects,
        "user_id": st.none() | st.uuids() | st.text(min_size=1, max_size=10),
    }
)


@st.composite
def records(draw: st.DrawFn) -> Feedback:
    created_at = draw(created)
    return Feedback.model_validate(
        {
            "id": draw(st.uuids()),
            "created_at": created_at,
            "modified_at": draw(st.just(created_at) | created),
            "session_id": draw(st.none() | st.uuids()),
            "trace_id": draw(trace_ids),
            "run_id": draw(st.none() | run_ids),
            "key": draw(st.text(min_size=1, max_size=30)),
            "score": draw(scores),
            "value": draw(values),
            "comment": draw(st.none() | st.text(max_size=50)),
            "correction": draw(st.none() | st.text(max_size=20) | json_objects),
            "feedback_source": draw(sources),
            "comparative_experiment_id": draw(st.none() | st.uuids()),
            "feedback_group_id": draw(st.none() | st.uuids()),
            "extra": draw(st.none() | json_objects),
            "feedback_config": draw(config),
            "error": draw(st.none() | st.booleans()),
            "start_time": draw(st.none() | times),
        }
    )
