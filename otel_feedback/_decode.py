"""Event attributes back to a feedback record: what :mod:`otel_feedback._codec` wrote.

:func:`decode` also reads the plain ``gen_ai.evaluation.result`` events that other code
writes (only semconv attributes). This side builds pydantic records, so it is imported
when the first record is built, not with the package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import ValidationError

from otel_feedback import _attributes as a
from otel_feedback._codec import run_attributes_of
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._ids import (
    datetime_from_ns,
    id_from_hex,
    span_hex,
    trace_hex,
    uuid_from_span_id,
    uuid_from_trace_id,
    uuid_of_int,
)
from otel_feedback._model import (
    Feedback,
    checked_feedback,
    invalid_feedback,
    source_of_type,
    with_run_attributes,
)

__all__ = ["decode", "decode_plain"]

# Deterministic ids for foreign events that carry none, so a re-read yields the same id.
_FOREIGN_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://opentelemetry.io/otel-feedback/event")


def decode_plain(
    attrs: Mapping[str, Any],
    *,
    id_number: int,
    timestamp_ns: int,
    trace_id: int,
    span_id: int,
    run: Mapping[str, str] | None = None,
) -> Feedback:
    """The record of attributes that :func:`encode_plain` wrote from checked values.

    For record_feedback's plain calls only, whose every value passed its cheap checks: the
    record is built without validating again (see ``checked_feedback``). ``run``: the
    judged span's run attributes, set on the new record as it is made, equal to what
    ``with_run_attributes`` gives, without its copy (half the cost of building the record).
    """
    created_at = datetime_from_ns(timestamp_ns)
    record = checked_feedback(
        id=uuid_of_int(id_number),
        created_at=created_at,
        modified_at=created_at,
        trace_id=uuid_from_trace_id(trace_id) if trace_id else None,
        run_id=uuid_from_span_id(span_id) if span_id else None,
        key=attrs[a.ATTR_KEY],
        score=attrs.get(a.ATTR_SCORE, attrs.get(a.ATTR_SCORE_VALUE)),
        value=attrs.get(a.ATTR_SCORE_LABEL),
        comment=attrs.get(a.ATTR_COMMENT),
        feedback_source=source_of_type(attrs[a.ATTR_SOURCE_TYPE]),
    )
    if run:
        object.__setattr__(record, "__pydantic_private__", _private_of(run))
    return record


# The private part of the records of the last run seen: the records of one span, built one
# after another, share it. Never changed in place (with_run_attributes sets run attributes
# on a copy, which gets its own), as checked_feedback's shared one: a dict per record would
# add to every garbage collection.
_last_private: tuple[object, dict[str, Any]] = (None, {})


def _private_of(run: Mapping[str, str]) -> dict[str, Any]:
    global _last_private  # noqa: PLW0603 - a one-entry cache
    last = _last_private
    if last[0] is not run:
        last = _last_private = (run, {"_run_attributes": MappingProxyType(dict(run))})
    return last[1]


def decode(
    attrs: Mapping[str, Any],
    *,
    timestamp_ns: int,
    trace_id: int,
    span_id: int,
    span_attributes: Mapping[str, Any] | None = None,
) -> Feedback:
    """Rebuild the record carried by one event's attributes.

    ``trace_id`` and ``span_id`` are those of the span the event sits on (or of the log
    record); explicit target attributes, as on a carrier span, take precedence. The
    record's ``run_attributes`` come from the event, else from ``span_attributes`` (those
    of the span it sits on).

    Raises:
        InvalidFeedbackError: the attributes do not describe a valid record.
    """
    if attrs.get(a.ATTR_TRUNCATED):
        raise InvalidFeedbackError(
            a.ATTR_TRUNCATED, "span limits cut this event's values: its record is incomplete"
        )
    key = attrs.get(a.ATTR_KEY)
    if not isinstance(key, str) or not key:
        raise InvalidFeedbackError(a.ATTR_KEY, "missing or not a non-empty string")
    trace_uuid, run_uuid = _target(attrs, trace_id, span_id)
    created_at = datetime_from_ns(timestamp_ns)
    record_id = attrs.get(a.ATTR_ID)
    if record_id is None:
        record_id = uuid5(
            _FOREIGN_ID_NAMESPACE, f"{trace_hex(trace_id)}{span_hex(span_id)}{timestamp_ns}{key}"
        )
    fields: dict[str, Any] = {
        "id": record_id,
        "created_at": created_at,
        "modified_at": attrs.get(a.ATTR_MODIFIED_AT, created_at),
        "trace_id": trace_uuid,
        "run_id": run_uuid,
        "key": key,
        "score": attrs.get(a.ATTR_SCORE, attrs.get(a.ATTR_SCORE_VALUE)),
        "value": attrs.get(a.ATTR_SCORE_LABEL),
        "comment": attrs.get(a.ATTR_COMMENT),
        "session_id": attrs.get(a.ATTR_SESSION_ID),
        "comparative_experiment_id": attrs.get(a.ATTR_COMPARATIVE_EXPERIMENT_ID),
        "feedback_group_id": attrs.get(a.ATTR_FEEDBACK_GROUP_ID),
        "start_time": attrs.get(a.ATTR_START_TIME),
        "error": attrs.get(a.ATTR_ERROR, True if a.ATTR_ERROR_TYPE in attrs else None),
        # Given as None rather than left out: every field is set, as when the record was
        # validated from record_feedback's arguments.
        "correction": None,
        "feedback_config": None,
        "extra": None,
        "feedback_source": None,
    }
    for name, attr in (
        ("value", a.ATTR_VALUE),
        ("correction", a.ATTR_CORRECTION),
        ("feedback_config", a.ATTR_FEEDBACK_CONFIG),
        ("extra", a.ATTR_EXTRA),
    ):
        if attr in attrs:
            fields[name] = _loads(attrs[attr], attr)
    source_type = attrs.get(a.ATTR_SOURCE_TYPE)
    if source_type is not None:
        metadata = attrs.get(a.ATTR_SOURCE_METADATA)
        fields["feedback_source"] = {
            "type": source_type,
            "metadata": None if metadata is None else _loads(metadata, a.ATTR_SOURCE_METADATA),
            "user_id": attrs.get(a.ATTR_SOURCE_USER_ID),
        }
    try:
        record = Feedback.model_validate(fields)
    except ValidationError as exc:
        raise invalid_feedback(exc) from None
    return with_run_attributes(record, run_attributes_of(attrs, span_attributes))


def _target(attrs: Mapping[str, Any], trace_id: int, span_id: int) -> tuple[UUID, UUID | None]:
    explicit_trace = attrs.get(a.ATTR_TRACE_ID)
    if explicit_trace is not None:
        trace_id = id_from_hex(explicit_trace, a.ATTR_TRACE_ID)
        explicit_run = attrs.get(a.ATTR_RUN_ID, "")
        span_id = id_from_hex(explicit_run, a.ATTR_RUN_ID) if explicit_run else 0
    if not trace_id:
        raise InvalidFeedbackError("trace_id", "the event has no valid trace id")
    return uuid_from_trace_id(trace_id), uuid_from_span_id(span_id) if span_id else None


def _loads(text: object, attr: str) -> Any:
    if not isinstance(text, str):
        raise InvalidFeedbackError(attr, f"must be a JSON string, got {type(text).__name__}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidFeedbackError(attr, f"not valid JSON ({exc})") from None
