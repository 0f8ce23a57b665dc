"""A feedback record to event attributes, losslessly (:mod:`otel_feedback._decode` reads them).

The attributes written here are the wire format of a record: on a span event, on an OTLP
log record and in any OTel pipeline in between. Encoding needs no pydantic, so recording
does not import it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opentelemetry.util.types import AttributeValue

from otel_feedback import _attributes as a

if TYPE_CHECKING:
    from otel_feedback._model import Feedback

__all__ = ["encode", "encode_plain"]


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
