from __future__ import annotations

import json
from uuid import UUID

import pytest
from hypothesis import given, settings

from otel_feedback import Feedback, InvalidFeedbackError
from otel_feedback import _attributes as a
from otel_feedback._codec import encode, evaluation_of
from otel_feedback._decode import decode
from otel_feedback._ids import datetime_from_ns, ns_from_datetime
from tests.strategies import records


def _decode_on_own_span(record: Feedback) -> Feedback:
    # A record travels on the span it judges: the span's ids and the event's timestamp
    # carry trace_id, run_id and created_at.
    assert record.trace_id is not None
    attrs = encode(record)
    if record.run_id is None:
        attrs[a.ATTR_TRACE_ID] = f"{record.trace_id.int:032x}"
    return decode(
        attrs,
        timestamp_ns=ns_from_datetime(record.created_at),
        trace_id=record.trace_id.int,
        span_id=record.run_id.int if record.run_id is not None else 0,
    )


@settings(max_examples=300, deadline=None)
@given(records())
def test_every_record_survives_encode_and_decode(record: Feedback) -> None:
    decoded = _decode_on_own_span(record)
    assert decoded == record
    assert decoded.model_dump_json() == record.model_dump_json()


@settings(max_examples=200, deadline=None)
@given(records())
def test_every_attribute_is_a_valid_otel_attribute_value(record: Feedback) -> None:
    for key, value in encode(record).items():
        assert isinstance(key, str)
        assert isinstance(value, str | bool | int | float), (key, value)


@settings(max_examples=200, deadline=None)
@given(records())
def test_the_json_form_reads_back_to_the_same_record(record: Feedback) -> None:
    assert Feedback.model_validate_json(record.model_dump_json()) == record
    assert Feedback.model_validate(json.loads(record.model_dump_json())) == record


@settings(max_examples=200, deadline=None)
@given(records())
def test_openinference_metadata_keys_hold_no_dot(record: Feedback) -> None:
    """Phoenix unflattens a dotted metadata key into nested objects: ``source.type`` would
    arrive as ``{"source": {"type": ...}}``. Every top-level key is flat."""
    for prefix in (a.SPAN_EVALUATION, a.TRACE_EVALUATION):
        result = evaluation_of(encode(record), prefix)
        if prefix + "metadata" in result:
            metadata = json.loads(str(result[prefix + "metadata"]))
            assert all("." not in key for key in metadata), sorted(metadata)


def test_the_source_type_is_metadata_under_a_flat_key() -> None:
    result = evaluation_of(
        {a.ATTR_KEY: "k", a.ATTR_ID: "1", a.ATTR_SCORE_VALUE: 1.0, a.ATTR_SOURCE_TYPE: "model"},
        a.SPAN_EVALUATION,
    )
    assert json.loads(str(result[a.SPAN_EVALUATION + "metadata"])) == {"source_type": "model"}


def test_timestamps_convert_exactly() -> None:
    ns = 1_714_951_391_077_838_000
    assert ns_from_datetime(datetime_from_ns(ns)) == ns
    assert datetime_from_ns(ns).isoformat() == "2024-05-05T23:23:11.077838+00:00"


def test_explicit_target_attributes_take_precedence() -> None:
    attrs = {
        a.ATTR_KEY: "k",
        a.ATTR_TRACE_ID: "0af7651916cd43dd8448eb211c80319c",
        a.ATTR_RUN_ID: "b7ad6b7169203331",
    }
    record = decode(attrs, timestamp_ns=10**18, trace_id=5, span_id=6)
    assert record.trace_id == UUID(int=0x0AF7651916CD43DD8448EB211C80319C)
    assert record.run_id == UUID(int=0xB7AD6B7169203331)
    whole_trace = decode(attrs | {a.ATTR_RUN_ID: ""}, timestamp_ns=10**18, trace_id=5, span_id=6)
    assert whole_trace.run_id is None


def test_foreign_events_get_a_stable_id() -> None:
    attrs = {a.ATTR_KEY: "k", a.ATTR_SCORE_VALUE: 1.0}
    first = decode(attrs, timestamp_ns=10**18, trace_id=5, span_id=6)
    again = decode(attrs, timestamp_ns=10**18, trace_id=5, span_id=6)
    other = decode(attrs, timestamp_ns=10**18, trace_id=5, span_id=7)
    assert first.id == again.id != other.id


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({}, a.ATTR_KEY),
        ({a.ATTR_KEY: ""}, a.ATTR_KEY),
        ({a.ATTR_KEY: "k", a.ATTR_TRACE_ID: "xyz"}, a.ATTR_TRACE_ID),
        ({a.ATTR_KEY: "k", a.ATTR_EXTRA: "[1"}, a.ATTR_EXTRA),
        ({a.ATTR_KEY: "k", a.ATTR_CORRECTION: 5}, a.ATTR_CORRECTION),
        ({a.ATTR_KEY: "k", a.ATTR_ID: "nope"}, "id"),
    ],
)
def test_malformed_attributes_name_the_culprit(attrs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidFeedbackError) as caught:
        decode(attrs, timestamp_ns=10**18, trace_id=5, span_id=6)
    assert caught.value.field == field


def test_an_event_without_a_trace_is_refused() -> None:
    with pytest.raises(InvalidFeedbackError, match=r"^trace_id: "):
        decode({a.ATTR_KEY: "k"}, timestamp_ns=10**18, trace_id=0, span_id=0)
