"""A feedback record to event attributes and back, losslessly.

The attributes written here are the wire format of a record: on a span event, on an OTLP
log record and in any OTel pipeline in between. :func:`decode` also reads the plain
``gen_ai.evaluation.result`` events that other code writes (only semconv attributes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from opentelemetry.util.types import AttributeValue
from pydantic import ValidationError

from otel_feedback import _attributes as a
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._ids import uuid_from_span_id, uuid_from_trace_id
from otel_feedback._model import Feedback, invalid_feedback

__all__ = [
    "datetime_from_ns",
    "decode",
    "encode",
    "encode_plain",
    "mark_if_cut",
    "ns_from_datetime",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# Deterministic ids for foreign events that carry none, so a re-read yields the same id.
_FOREIGN_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://opentelemetry.io/otel-feedback/event")


def ns_from_datetime(value: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float rounding)."""
    return (value - _EPOCH) // _MICROSECOND * 1000


def datetime_from_ns(value: int) -> datetime:
    """The UTC datetime of a nanosecond timestamp, truncated to microseconds."""
    return _EPOCH + timedelta(microseconds=value // 1000)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_plain(  # noqa: PLR0917 - on the recording path, where keywords cost time
    key: str,
    id_text: str,
    score: bool | int | float | None,
    value: Any,
    comment: str | None,
    source_type: str | None,
) -> dict[str, AttributeValue]:
    """The attributes of the fields most feedback has; :func:`encode` adds the others."""
    attrs: dict[str, AttributeValue] = {a.ATTR_KEY: key, a.ATTR_ID: id_text}
    if score is not None:
        attrs[a.ATTR_SCORE_VALUE] = float(score)
        if score.__class__ is not float:
            attrs[a.ATTR_SCORE] = score
    if isinstance(value, str):
        attrs[a.ATTR_SCORE_LABEL] = value
    elif value is not None:
        attrs[a.ATTR_VALUE] = _dumps(value)
    if comment is not None:
        attrs[a.ATTR_COMMENT] = comment
    if source_type is not None:
        attrs[a.ATTR_SOURCE_TYPE] = source_type
    return attrs


def encode(record: Feedback) -> dict[str, AttributeValue]:
    """The event attributes of ``record``; its target ids and time travel beside them."""
    source = record.feedback_source
    attrs = encode_plain(
        record.key,
        str(record.id),
        record.score,
        record.value,
        record.comment,
        None if source is None else source.type,
    )
    if record.correction is not None:
        attrs[a.ATTR_CORRECTION] = _dumps(record.correction)
    if source is not None:
        if source.metadata is not None:
            attrs[a.ATTR_SOURCE_METADATA] = _dumps(source.metadata)
        if source.user_id is not None:
            attrs[a.ATTR_SOURCE_USER_ID] = str(source.user_id)
    for name, uuid in (
        (a.ATTR_SESSION_ID, record.session_id),
        (a.ATTR_COMPARATIVE_EXPERIMENT_ID, record.comparative_experiment_id),
        (a.ATTR_FEEDBACK_GROUP_ID, record.feedback_group_id),
    ):
        if uuid is not None:
            attrs[name] = str(uuid)
    if record.feedback_config is not None:
        attrs[a.ATTR_FEEDBACK_CONFIG] = _dumps(record.feedback_config.model_dump(mode="json"))
    if record.extra is not None:
        attrs[a.ATTR_EXTRA] = _dumps(record.extra)
    if record.error is not None:
        attrs[a.ATTR_ERROR] = record.error
        if record.error:
            attrs[a.ATTR_ERROR_TYPE] = a.ERROR_TYPE_OTHER
    if record.start_time is not None:
        attrs[a.ATTR_START_TIME] = record.start_time.isoformat()
    if record.modified_at != record.created_at:
        attrs[a.ATTR_MODIFIED_AT] = record.modified_at.isoformat()
    return attrs


def mark_if_cut(attrs: dict[str, AttributeValue], span: object) -> dict[str, AttributeValue]:
    """Add :data:`ATTR_TRUNCATED` when ``span``'s limits will cut one of ``attrs``."""
    # SDK spans keep their limits in _limits; other spans apply none we could know of.
    limit = getattr(getattr(span, "_limits", None), "max_attribute_length", None)
    if limit is not None and any(isinstance(v, str) and len(v) > limit for v in attrs.values()):
        attrs[a.ATTR_TRUNCATED] = True
    return attrs


def decode(attrs: Mapping[str, Any], *, timestamp_ns: int, trace_id: int, span_id: int) -> Feedback:
    """Rebuild the record carried by one event's attributes.

    ``trace_id`` and ``span_id`` are those of the span the event sits on (or of the log
    record); explicit target attributes, as on a carrier span, take precedence.

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
            _FOREIGN_ID_NAMESPACE, f"{trace_id:032x}{span_id:016x}{timestamp_ns}{key}"
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
        return Feedback.model_validate(fields)
    except ValidationError as exc:
        raise invalid_feedback(exc) from None


def _target(attrs: Mapping[str, Any], trace_id: int, span_id: int) -> tuple[UUID, UUID | None]:
    explicit_trace = attrs.get(a.ATTR_TRACE_ID)
    if explicit_trace is not None:
        trace_id = _hex(explicit_trace, a.ATTR_TRACE_ID)
        explicit_run = attrs.get(a.ATTR_RUN_ID, "")
        span_id = _hex(explicit_run, a.ATTR_RUN_ID) if explicit_run else 0
    if not trace_id:
        raise InvalidFeedbackError("trace_id", "the event has no valid trace id")
    return uuid_from_trace_id(trace_id), uuid_from_span_id(span_id) if span_id else None


def _hex(value: object, attr: str) -> int:
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise InvalidFeedbackError(attr, f"not a hexadecimal id: {value!r}")


def _loads(text: object, attr: str) -> Any:
    if not isinstance(text, str):
        raise InvalidFeedbackError(attr, f"must be a JSON string, got {type(text).__name__}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidFeedbackError(attr, f"not valid JSON ({exc})") from None
