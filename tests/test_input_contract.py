"""The input contract: a valid record or an InvalidFeedbackError naming the argument."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import InvalidFeedbackError, record_feedback

TRACER = TracerProvider().get_tracer("contract")


def _record(**arguments: Any) -> Any:
    with TRACER.start_as_current_span("run"):
        recorded = record_feedback(**{"key": "k", **arguments})
    assert recorded is not None
    return recorded.to_feedback()


def _refused(argument: str, **arguments: Any) -> str:
    with pytest.raises(InvalidFeedbackError) as raised, TRACER.start_as_current_span("run"):
        record_feedback(**{"key": "k", **arguments})
    assert raised.value.field == argument
    assert str(raised.value).startswith(f"{argument}: ")
    return str(raised.value)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (np.int64(3), 3),
        (np.int8(-2), -2),
        (np.uint32(7), 7),
        (np.float32(0.5), 0.5),
        (np.float64(0.25), 0.25),
        (np.bool_(True), True),
        (np.bool_(False), False),
        (Fraction(1, 4), 0.25),
    ],
)
def test_numbers_that_are_numbers_come_out_plain(score: object, expected: object) -> None:
    record = _record(score=score)
    assert record.score == expected
    assert type(record.score) is type(expected)
    value = _record(value=score).value
    assert value == expected
    assert type(value) is type(expected)


class _Index:
    def __index__(self) -> int:
        return 5


def test_an_index_type_is_an_int() -> None:
    assert _record(score=_Index()).score == 5


@pytest.mark.parametrize(
    "score", ["1", b"1", float("nan"), float("inf"), np.float64("nan"), np.float32("-inf")]
)
def test_strings_nan_and_infinities_are_refused(score: object) -> None:
    _refused("score", score=score)


@pytest.mark.parametrize("argument", ["score", "value"])
def test_arrays_are_not_numbers(argument: str) -> None:
    _refused(argument, **{argument: np.array([1.0])})
    _refused(argument, **{argument: np.array([1, 2])})


def test_huge_integers_are_refused_by_name() -> None:
    assert "64-bit" in _refused("score", score=10**5000)
    assert "64-bit" in _refused("value", value=10**5000)
    assert "JSON" in _refused("value", value={"n": 10**5000})
    assert "JSON" in _refused("extra", extra={"n": 10**5000})
    _refused("score", score=np.uint64(2**64 - 1))


LONE = "\ud800"


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("key", f"a{LONE}"),
        ("comment", f"a{LONE}"),
        ("value", f"a{LONE}"),
        ("value", {"a": LONE}),
        ("value", {LONE: 1}),
        ("correction", LONE),
        ("correction", {"a": [LONE]}),
        ("extra", {"a": LONE}),
        ("source_info", {"a": LONE}),
        ("feedback_source_type", LONE),
        ("user_id", LONE),
    ],
)
def test_lone_surrogates_are_refused_by_name(argument: str, value: object) -> None:
    arguments: dict[str, Any] = {argument: value}
    if argument == "key":
        arguments = {"key": value}
    _refused(argument, **arguments)


class _RaisingMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("no")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no")

    def __len__(self) -> int:
        raise RuntimeError("no")


class _RaisingDict(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("no")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no")

    __hash__ = None


class _RaisingNumber:
    def __index__(self) -> int:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("source_info", _RaisingMapping()),
        ("feedback_config", _RaisingMapping()),
        ("extra", _RaisingDict(a=1)),
        ("value", _RaisingDict(a=1)),
        ("correction", _RaisingDict(a=1)),
        ("score", _RaisingNumber()),
        ("value", _RaisingNumber()),
    ],
)
def test_objects_whose_methods_raise_are_refused_by_name(argument: str, value: object) -> None:
    assert "RuntimeError" in _refused(argument, **{argument: value})


class _Unshowable:
    """An object whose repr and str raise, as a broken proxy or a half-built object may."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class _UnshowableText(str):
    __slots__ = ()

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


# The positions where such an object once escaped as RuntimeError, then every other one.
_ARGUMENTS = [
    "key",
    "comment",
    "feedback_source_type",
    "session_id",
    "trace_id",
    "score",
    "value",
    "correction",
    "source_info",
    "source_run_id",
    "feedback_id",
    "feedback_config",
    "comparative_experiment_id",
    "feedback_group_id",
    "extra",
    "error",
    "start_time",
    "user_id",
    "span",
    "run_id",
    "traceparent",
]


@pytest.mark.parametrize("argument", _ARGUMENTS)
@pytest.mark.parametrize("value", [_Unshowable(), _UnshowableText("x")], ids=["object", "str"])
def test_an_argument_whose_repr_raises_is_refused_by_name_or_taken(
    argument: str, value: object
) -> None:
    arguments: dict[str, Any] = {argument: value}
    if argument == "run_id":
        arguments["trace_id"] = "ab" * 16
    refused: InvalidFeedbackError | None = None
    with TRACER.start_as_current_span("run"):
        try:
            record_feedback(**{"key": "k", **arguments})
        except InvalidFeedbackError as error:  # any other exception fails the test
            refused = error
    if refused is not None:
        assert refused.field.split(".")[0] == argument
        assert str(refused).startswith(f"{argument}: ")
        return
    # Taken only as a valid string: a str whose repr raises is still a string.
    assert isinstance(value, str)
    assert argument in {"key", "comment", "feedback_source_type", "value", "correction", "user_id"}


@pytest.mark.parametrize(
    "argument", ["key", "comment", "feedback_source_type", "session_id", "trace_id"]
)
def test_the_five_positions_refuse_an_unshowable_object_by_name(argument: str) -> None:
    message = _refused(argument, **{argument: _Unshowable()})
    assert "_Unshowable" in message


numpy_scores = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 2**32 - 1).map(np.uint32),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.booleans().map(np.bool_),
    st.fractions(),
    st.integers(),
    st.floats(),
    st.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(numpy_scores)
def test_any_score_is_a_plain_number_or_refused_by_name(score: object) -> None:
    try:
        record = _record(score=score)
    except InvalidFeedbackError as exc:
        refused: str | None = exc.field
    else:
        refused = None
    if refused is not None:
        assert refused == "score"
        return
    assert type(record.score) in (bool, int, float)
    assert not isinstance(score, str)
    assert math.isfinite(record.score)
    assert record.score == (float(score) if type(record.score) is float else score)  # type: ignore[arg-type]


text_with_surrogates = st.text(
    alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["key", "comment", "value", "correction", "user_id", "feedback_source_type"]),
    text_with_surrogates,
)
def test_text_is_valid_utf8_or_refused_by_name(argument: str, text: str) -> None:
    try:
        record = _record(**{argument: text})
    except InvalidFeedbackError as exc:
        refused: str | None = exc.field
    else:
        refused = None
    if refused is not None:
        assert refused == argument
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    assert record.model_dump_json().encode()  # every writer can write it
