"""A feedback record to event attributes, losslessly (:mod:`otel_feedback._decode` reads them).

The attributes written here are the wire format of a record: on a span event, on an OTLP
log record and in any OTel pipeline in between. Encoding needs no pydantic, so recording
does not import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.util.types import AttributeValue

from otel_feedback import _attributes as a
from otel_feedback._kinds import annotator_kind

if TYPE_CHECKING:
    from otel_feedback._model import Feedback

__all__ = ["encode", "encode_plain", "evaluation_body", "evaluation_of", "run_attributes_of"]

# Attributes of the event that the OpenInference result carries in its own fields, or that
# say where the event sits rather than what it says.
_NOT_METADATA = frozenset(
    {
        a.ATTR_KEY,
        a.ATTR_SCORE,
        a.ATTR_SCORE_VALUE,
        a.ATTR_SCORE_LABEL,
        a.ATTR_COMMENT,
        a.ATTR_ID,
        a.ATTR_TRACE_ID,
        a.ATTR_RUN_ID,
        a.ATTR_TRUNCATED,
        a.ATTR_ERROR_TYPE,
    }
)
_JSON_ATTRIBUTES = frozenset(
    {
        a.ATTR_VALUE,
        a.ATTR_CORRECTION,
        a.ATTR_SOURCE_METADATA,
        a.ATTR_FEEDBACK_CONFIG,
        a.ATTR_EXTRA,
    }
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def run_attributes_of(*sources: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The judged span's correlation attributes found in ``sources`` (first wins), or None.

    Only non-empty strings count: other code may set these names to anything.
    """
    found: dict[str, str] | None = None
    for name in a.RUN_ATTRIBUTES:
        for source in sources:
            value = None if source is None else source.get(name)
            if value.__class__ is str and value:
                if found is None:
                    found = {}
                found[name] = value
                break
    return found


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
    """The event attributes of ``record``; its target ids and time travel beside them.

    The judged span's ``run_attributes`` (``gen_ai.response.id``, ...) come along under
    their own names.
    """
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
    # The judged span's correlation keys under their own names, as the evaluation event
    # defines gen_ai.response.id.
    attrs.update(record.run_attributes)
    return attrs


_BODY_VALUE_CHARS = 100
"""A shown value longer than this is cut: the body is a one-line summary, the attributes whole."""


def evaluation_body(record: Feedback) -> str:
    """The log event's text, as pydantic-evals writes it: ``evaluation: <key>=<result>``.

    Logfire's live evaluations show it inline (``pydantic_evals/_otel_emit.py``,
    ``_format_result_body``): a bool as ``True``/``False``, a float in ``g`` form, an int as
    it is, a string label quoted; ``evaluation: <key> failed`` for a record whose evaluation
    errored. A JSON value, or nothing but a comment, shows the key alone.
    """
    key = record.key
    if record.error:
        return f"evaluation: {key} failed"
    result = record.score if record.score is not None else record.value
    if result is None or isinstance(result, dict):
        return f"evaluation: {key}"
    if isinstance(result, bool):
        shown = "True" if result else "False"
    elif isinstance(result, float):
        shown = format(result, "g")
    elif isinstance(result, str):
        shown = repr(result)
    else:
        shown = str(result)
    if len(shown) > _BODY_VALUE_CHARS:
        shown = shown[: _BODY_VALUE_CHARS - 3] + "..."
    return f"evaluation: {key}={shown}"


def evaluation_of(attrs: Mapping[str, Any], prefix: str) -> dict[str, AttributeValue]:
    """One OpenInference result (``spec/annotations.md``) of an event's attributes.

    ``prefix`` is :data:`~otel_feedback._attributes.SPAN_EVALUATION` or its ``trace.`` form.
    name = key, score (a bool as 0 or 1: the spec's scores are numbers), label = a string
    value, explanation = comment, annotator_kind from the source type, identifier = the
    feedback id, metadata = the rest of the record as a JSON object whose keys hold no dot
    (``source_type``, ``correction``, ...): Phoenix reads a dotted key as a nested path. Empty
    when the record has no score, label or comment: the spec wants one of them in every
    result.
    """
    score = attrs.get(a.ATTR_SCORE, attrs.get(a.ATTR_SCORE_VALUE))
    label = attrs.get(a.ATTR_SCORE_LABEL)
    explanation = attrs.get(a.ATTR_COMMENT)
    if score is None and label is None and explanation is None:
        return {}
    result: dict[str, AttributeValue] = {prefix + "name": attrs[a.ATTR_KEY]}
    if score is not None:
        result[prefix + "score"] = int(score) if score.__class__ is bool else score
    if label is not None:
        result[prefix + "label"] = label
    if explanation is not None:
        result[prefix + "explanation"] = explanation
    result[prefix + "annotator_kind"] = annotator_kind(attrs.get(a.ATTR_SOURCE_TYPE))
    result[prefix + "identifier"] = attrs[a.ATTR_ID]
    rest = [name for name in attrs if name not in _NOT_METADATA]
    if rest == _SOURCE_ONLY:  # most records: the metadata names their source type alone
        text = _SOURCE_METADATA.get(attrs[a.ATTR_SOURCE_TYPE])
        if text is None:
            text = _dumps({_METADATA_SOURCE_TYPE: attrs[a.ATTR_SOURCE_TYPE]})
            if len(_SOURCE_METADATA) < _MAX_SOURCES:
                _SOURCE_METADATA[attrs[a.ATTR_SOURCE_TYPE]] = text
        result[prefix + "metadata"] = text
    elif rest:
        result[prefix + "metadata"] = _dumps(
            {
                _metadata_key(name): json.loads(attrs[name])
                if name in _JSON_ATTRIBUTES
                else attrs[name]
                for name in rest
            }
        )
    return result


def _metadata_key(name: str) -> str:
    """An attribute's key in the metadata object: no prefix, and no dot (Phoenix nests on dots)."""
    return name.removeprefix(a.PREFIX).replace(".", "_")


_METADATA_SOURCE_TYPE = _metadata_key(a.ATTR_SOURCE_TYPE)
_SOURCE_ONLY = [a.ATTR_SOURCE_TYPE]
_SOURCE_METADATA: dict[Any, str] = {}
_MAX_SOURCES = 64
