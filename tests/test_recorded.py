"""RecordedFeedback: plain arguments skip validation, yet make the very record it would."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    InvalidFeedbackError,
    RecordedFeedback,
    record_feedback,
)
from otel_feedback._codec import encode
from otel_feedback._ids import ns_from_datetime
from tests.strategies import scores

# What record_feedback takes without validating: exact str keys, bool/int/float scores,
# string values and comments, within the limits. Larger text is covered by test_fuzz.
plain_arguments = st.fixed_dictionaries(
    {
        "key": st.text(min_size=1, max_size=40),
        "score": scores,
        "value": st.none() | st.text(max_size=40),
        "comment": st.none() | st.text(max_size=60),
        "feedback_source_type": st.sampled_from(["api", "model", "app"]),
    }
)


@pytest.fixture(scope="module")
def provider() -> TracerProvider:
    # Hypothesis runs many examples per test: one provider, exported records read per example.
    return TracerProvider()


def _record_on_a_span(provider: TracerProvider, **arguments: Any) -> tuple[RecordedFeedback, Any]:
    with provider.get_tracer("t").start_as_current_span("run") as span:
        recorded = record_feedback(**arguments)
    assert recorded is not None
    (event,) = span.events  # type: ignore[attr-defined]
    return recorded, event


@settings(max_examples=300, deadline=None)
@given(plain_arguments)
def test_a_plain_record_equals_its_validated_self(
    provider: TracerProvider, arguments: dict[str, Any]
) -> None:
    recorded, event = _record_on_a_span(provider, **arguments)
    built = recorded.to_feedback()
    # Validation from scratch (the same fields as JSON) finds nothing to change or refuse.
    validated = Feedback.model_validate_json(built.model_dump_json())
    assert validated == built
    assert type(validated.score) is type(built.score)
    assert validated.model_dump_json() == built.model_dump_json()
    assert list(built.__dict__) == list(Feedback.model_fields)  # the order validation keeps
    # The event carries exactly what encoding the validated record writes, at its time.
    assert dict(event.attributes) == encode(validated)
    assert event.timestamp == ns_from_datetime(validated.created_at)


@settings(max_examples=100, deadline=None)
@given(plain_arguments)
def test_the_validating_path_makes_the_same_record(
    provider: TracerProvider, arguments: dict[str, Any]
) -> None:
    plain, _ = _record_on_a_span(provider, **arguments)
    # An explicit feedback_id sends the same arguments through full validation.
    validated, _ = _record_on_a_span(provider, feedback_id=plain.id, **arguments)
    mine, theirs = plain.to_feedback(), validated.to_feedback()
    assert mine.model_dump(exclude={"created_at", "modified_at", "trace_id", "run_id"}) == (
        theirs.model_dump(exclude={"created_at", "modified_at", "trace_id", "run_id"})
    )
    assert type(mine.score) is type(theirs.score)
    assert mine.model_fields_set == theirs.model_fields_set


def test_the_handle_reads_as_its_record(provider: TracerProvider) -> None:
    recorded, event = _record_on_a_span(provider, key="correctness", score=0.75)
    built = recorded.to_feedback()
    assert recorded.id == built.id
    assert recorded.id.version == 4
    assert recorded.key == built.key == "correctness"
    assert recorded.trace_id == built.trace_id
    assert recorded.run_id == built.run_id
    assert recorded.created_at == built.created_at
    assert event.timestamp == ns_from_datetime(built.created_at)
    assert str(recorded.id) in repr(recorded)
    # Built afresh each time, equal each time: what the exporters get is equal too.
    assert recorded.to_feedback() == built
    assert recorded.to_feedback() is not built


def test_exported_plain_records_equal_the_returned_ones() -> None:
    provider = TracerProvider()
    exporter = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(exporter)
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        made = [record_feedback("k", score=i, value="v", comment="c") for i in range(5)]
    processor.force_flush()
    assert list(exporter.get_finished_feedback()) == [
        r.to_feedback() for r in made if r is not None
    ]
    provider.shutdown()


class _Grade(IntEnum):
    GOOD = 1


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"key": ""}, "key"),
        ({"key": "k" * 257}, "key"),
        ({"score": float("nan")}, "score"),
        ({"score": float("inf")}, "score"),
        ({"score": 1 << 63}, "score"),
        ({"comment": "c" * 65_537}, "comment"),
        ({"value": "v" * 65_537}, "value"),
        ({"feedback_source_type": ""}, "feedback_source_type"),
    ],
)
def test_what_the_cheap_checks_pass_on_is_refused_by_validation(
    provider: TracerProvider, arguments: dict[str, Any], field: str
) -> None:
    with (
        provider.get_tracer("t").start_as_current_span("run"),
        pytest.raises(InvalidFeedbackError) as raised,
    ):
        record_feedback(**{"key": "k", "score": 1, **arguments})
    assert raised.value.field == field


def test_subclasses_go_through_validation_and_come_out_plain(provider: TracerProvider) -> None:
    # An IntEnum passes isinstance(int) but not the cheap exact-class check: validation turns
    # it into the plain int it stands for, in the record and on the event alike.
    recorded, event = _record_on_a_span(provider, key="k", score=_Grade.GOOD)
    built = recorded.to_feedback()
    assert type(built.score) is int
    assert built.score == 1
    assert type(event.attributes["otel_feedback.score"]) is int
    assert dict(event.attributes) == encode(built)
