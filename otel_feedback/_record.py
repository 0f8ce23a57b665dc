"""record_feedback(): validate, attach to the span as one event, and keep the record aside."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from opentelemetry import trace
from pydantic import ValidationError

from otel_feedback._attributes import EVENT_NAME
from otel_feedback._codec import datetime_from_ns, encode
from otel_feedback._environment import sdk_disabled
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._ids import as_uuid, uuid_from_span_id, uuid_from_trace_id
from otel_feedback._log import warn_once
from otel_feedback._model import Feedback, FeedbackConfig, invalid_feedback
from otel_feedback._pending import live_registries

__all__ = ["record_feedback"]

IdLike = UUID | str

# Record fields that users set through an argument of another name.
_ARGUMENT_OF_FIELD = {
    "feedback_source.metadata": "source_info",
    "feedback_source.user_id": "user_id",
    "feedback_source.type": "feedback_source_type",
}


def record_feedback(
    key: str = "unnamed",
    *,
    score: bool | int | float | None = None,
    value: bool | int | float | str | dict[str, Any] | None = None,
    comment: str | None = None,
    correction: dict[str, Any] | str | None = None,
    source_info: Mapping[str, Any] | None = None,
    feedback_source_type: str | Enum = "api",
    source_run_id: IdLike | None = None,
    feedback_id: IdLike | None = None,
    feedback_config: FeedbackConfig | Mapping[str, Any] | None = None,
    comparative_experiment_id: IdLike | None = None,
    feedback_group_id: IdLike | None = None,
    extra: dict[str, Any] | None = None,
    error: bool | None = None,
    session_id: IdLike | None = None,
    start_time: datetime | None = None,
    user_id: IdLike | None = None,
) -> Feedback | None:
    """Record feedback on the current span.

    The parameters are those of LangSmith's ``Client.create_feedback``. The record becomes
    one ``gen_ai.evaluation.result`` event on the current span, and a
    :class:`FeedbackSpanProcessor` exports it when the span ends. Its ``trace_id`` and
    ``run_id`` are the span's trace id and span id read as UUIDs. No I/O happens here.

    Example::

        with tracer.start_as_current_span("answer_question"):
            record_feedback("correctness", score=1, comment="matches the reference")

    Args:
        key: the metric's name, e.g. ``"correctness"``.
        score: a numeric score; ``bool``, ``int`` and ``float`` are kept apart.
        value: a display or categorical value (``str``), a number, or a JSON object.
        comment: a justification for the score.
        correction: what the run should have produced.
        source_info: metadata about the source, stored in ``feedback_source.metadata``.
        feedback_source_type: ``"api"`` (default), ``"model"`` for an LLM judge, or another
            source kind such as ``"app"``.
        source_run_id: the run that produced this feedback (an evaluator's own run),
            stored as ``feedback_source.metadata["__run"]["run_id"]`` as LangSmith does.
        feedback_id: the record's id; a random UUID when not given.
        feedback_config: how to read scores of this key; the score is checked against it.
        comparative_experiment_id: the comparative experiment this belongs to.
        feedback_group_id: groups the feedback of one preference or ranking decision.
        extra: metadata about the feedback itself.
        error: whether the evaluation errored.
        session_id: the tracing project of the run, when known.
        start_time: the evaluated run's start time.
        user_id: the person who gave the feedback (``feedback_source.user_id``).

    Returns:
        The record that will be exported, or ``None`` when no recording span is current
        (a warning is logged once) or ``OTEL_SDK_DISABLED`` is true (silently).

    Raises:
        InvalidFeedbackError: a ``ValueError`` naming the bad argument and the reason.
    """
    span = trace.get_current_span()
    context = span.get_span_context()
    recording = span.is_recording()
    # Only a span that does not record can come from a disabled SDK: the check costs the
    # recording path nothing.
    if not recording and sdk_disabled():
        return None
    now_ns = time.time_ns() // 1000 * 1000  # the record keeps microseconds: stay exact
    created_at = datetime_from_ns(now_ns)
    if isinstance(feedback_source_type, Enum):
        feedback_source_type = feedback_source_type.value
    fields: dict[str, Any] = {
        "id": uuid.uuid4() if feedback_id is None else as_uuid(feedback_id, "feedback_id"),
        "created_at": created_at,
        "modified_at": created_at,
        "trace_id": uuid_from_trace_id(context.trace_id) if recording else None,
        "run_id": uuid_from_span_id(context.span_id) if recording else None,
        "key": key,
        "score": score,
        "value": value,
        "comment": comment,
        "correction": correction,
        "feedback_source": _source(feedback_source_type, source_info, source_run_id, user_id),
        "session_id": session_id,
        "comparative_experiment_id": comparative_experiment_id,
        "feedback_group_id": feedback_group_id,
        "extra": extra,
        "feedback_config": feedback_config,
        "error": error,
        "start_time": start_time,
    }
    try:
        record = Feedback.model_validate(fields)
    except ValidationError as exc:
        raise invalid_feedback(exc, rename=_ARGUMENT_OF_FIELD) from None
    # Validated first, recording checked second: a bad call fails the same way whether or
    # not its trace was sampled, so bugs do not hide behind sampling.
    if not recording:
        warn_once(
            "no-recording-span",
            "record_feedback(%r) was called with no recording span current; the feedback "
            "was not recorded",
            key,
        )
        return None
    span.add_event(EVENT_NAME, encode(record), timestamp=now_ns)
    span_key = (context.trace_id, context.span_id)
    for registry in live_registries():
        registry.add(span_key, record)
    return record


def _source(
    source_type: object,
    source_info: Mapping[str, Any] | None,
    source_run_id: IdLike | None,
    user_id: IdLike | None,
) -> dict[str, Any]:
    if source_info is not None and not isinstance(source_info, Mapping):
        raise InvalidFeedbackError(
            "source_info", f"must be a mapping, got {type(source_info).__name__}"
        )
    metadata: dict[str, Any] | None = None if source_info is None else dict(source_info)
    if source_run_id is not None:
        run_id = as_uuid(source_run_id, "source_run_id")
        metadata = metadata or {}
        metadata.setdefault("__run", {"run_id": str(run_id)})
    if not isinstance(source_type, str) or not source_type:
        raise InvalidFeedbackError(
            "feedback_source_type", f"must be a non-empty string, got {source_type!r}"
        )
    return {"type": source_type, "metadata": metadata, "user_id": user_id}
