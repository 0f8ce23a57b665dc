"""record_feedback(): which run, cheap checks or full validation, then the hand-off."""

from __future__ import annotations

import atexit
import time
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from otel_feedback._codec import encode, encode_plain
from otel_feedback._environment import sdk_disabled
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._ids import (
    IdLike,
    as_uuid,
    datetime_from_ns,
    random_uuid4,
    random_uuid4_int,
    uuid_from_span_id,
    uuid_from_trace_id,
    uuid_text,
)
from otel_feedback._limits import INT64_MAX, INT64_MIN, MAX_COMMENT_CHARS, MAX_KEY_CHARS
from otel_feedback._log import LossLog
from otel_feedback._recording.carrier import deliver_remote
from otel_feedback._recording.handoff import put_on_span
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.target import (
    Remote,
    SpanLike,
    Target,
    current_target,
    read_argument,
    resolve_target,
)

if TYPE_CHECKING:
    from otel_feedback._model import Feedback, FeedbackConfig

__all__ = ["record_feedback", "recorded_about"]

# Feedback with no run to attach to: counted in one rate-limited line per 30 s, the rest at exit.
_not_recorded = LossLog("feedback record(s)")
atexit.register(_not_recorded.flush)

UUIDLike = UUID | str

_INFINITY = float("inf")
_NEGATIVE_INFINITY = -_INFINITY

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
    source_run_id: UUIDLike | None = None,
    feedback_id: UUIDLike | None = None,
    feedback_config: FeedbackConfig | Mapping[str, Any] | None = None,
    comparative_experiment_id: UUIDLike | None = None,
    feedback_group_id: UUIDLike | None = None,
    extra: dict[str, Any] | None = None,
    error: bool | None = None,
    session_id: UUIDLike | None = None,
    start_time: datetime | None = None,
    user_id: UUIDLike | None = None,
    span: SpanLike | None = None,
    trace_id: IdLike | None = None,
    run_id: IdLike | None = None,
    traceparent: str | None = None,
) -> RecordedFeedback | None:
    """Record feedback on the current span, or on any run given by reference.

    The parameters are those of LangSmith's ``Client.create_feedback``. The record's
    ``trace_id`` and ``run_id`` are the judged span's trace id and span id read as UUIDs. No
    I/O happens here: a :class:`FeedbackSpanProcessor` exports the record in the background.

    - On a recording span (the current one by default): one ``gen_ai.evaluation.result``
      event on it, exported when the span ends.
    - On a run that has ended or lives elsewhere (``span=``, ``trace_id=``/``run_id=``,
      ``traceparent=``): a short ``feedback <key>`` carrier span, OpenInference's EVALUATOR
      form of post-hoc feedback, linked to the judged span (also its parent) and carrying
      the same event; the record keeps the judged run's ids. Feedback on a whole trace links
      the trace's root when a span of it ended here.
    - On a trace that is not recorded (sampled out): the record goes to the processors
      directly, unless ``OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING=true``.

    Example::

        with tracer.start_as_current_span("answer_question"):
            record_feedback("correctness", score=1, comment="matches the reference")

        record_feedback("user_rating", score=0, traceparent=request.headers["traceparent"])

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
        span: the judged span: a ``Span`` (open or ended), a ``ReadableSpan``, or a
            ``SpanContext``.
        trace_id: the judged trace: an int, 32 hex digits, or a UUID as LangSmith gives
            it. Alone, the feedback is about the whole trace (``run_id`` empty).
        run_id: the judged span within ``trace_id``: an int, 16 hex digits, or a LangSmith
            run UUID (``UUID(int=span_id)``).
        traceparent: the judged span as a W3C ``traceparent`` header value.

    Returns:
        The :class:`RecordedFeedback`: its ``id`` and run at once, and the full
        :class:`Feedback` the exporters receive through ``to_feedback()``. ``None`` when
        there is no run to attach it to (no target and no current span: a warning is
        logged once), when
        ``OTEL_SDK_DISABLED`` is true (silently), or when it follows its trace's sampling.

    Raises:
        InvalidFeedbackError: a ``ValueError`` naming the bad argument and the reason:
            bad values, malformed or all-zero ids, or conflicting targets.
    """
    target = _target_of(span, trace_id, run_id, traceparent)
    if target is _OFF:
        return None
    judged_trace, judged_span = _judged_ids(target)  # type: ignore[arg-type]
    now_ns = time.time_ns() // 1000 * 1000  # the record keeps microseconds: stay exact
    if feedback_source_type.__class__ is not str and isinstance(feedback_source_type, Enum):
        feedback_source_type = feedback_source_type.value
    # The common call (a key, a score, a string value, a comment) takes cheap checks only;
    # its record is built from its event when exported. Anything else is validated now.
    if (
        correction is None
        and source_info is None
        and source_run_id is None
        and user_id is None
        and feedback_id is None
        and feedback_config is None
        and extra is None
        and error is None
        and session_id is None
        and start_time is None
        and comparative_experiment_id is None
        and feedback_group_id is None
        and _plain(key, score, value, comment, feedback_source_type)
    ):
        record: Feedback | None = None
        id_number = random_uuid4_int()
        attributes = encode_plain(
            key,
            uuid_text(id_number),
            score,
            value,
            comment,
            feedback_source_type,  # type: ignore[arg-type] # _plain() made sure it is a str
        )
    else:
        record = _checked_record(
            now_ns,
            judged_trace,
            judged_span,
            key=key,
            score=score,
            value=value,
            comment=comment,
            correction=correction,
            source_type=feedback_source_type,
            source_info=source_info,
            source_run_id=source_run_id,
            user_id=user_id,
            feedback_id=feedback_id,
            feedback_config=feedback_config,
            comparative_experiment_id=comparative_experiment_id,
            feedback_group_id=feedback_group_id,
            extra=extra,
            error=error,
            session_id=session_id,
            start_time=start_time,
        )
        if record is None:
            return None  # invalid, but the SDK is disabled: it refuses nothing
        attributes = encode(record)
        id_number = record.id.int
    recorded = RecordedFeedback._made(  # noqa: SLF001 - the handle's maker
        attributes=attributes,
        id_number=id_number,
        time_ns=now_ns,
        trace_id=judged_trace,
        span_id=judged_span,
        record=record,
    )
    return _hand_off(recorded, target, now_ns)  # type: ignore[arg-type]


def recorded_about(trace_id: int, span_id: int, **fields: Any) -> RecordedFeedback:
    """Validated feedback about a run known by its ids, not handed off: the caller delivers it.

    ``fields`` are :func:`record_feedback`'s record arguments (``key``, ``score``, ...,
    ``source_type``); what an evaluator returned is checked here as a call would be.

    Raises:
        InvalidFeedbackError: naming the bad field and the reason.
    """
    now_ns = time.time_ns() // 1000 * 1000
    fields.setdefault("source_type", "api")
    for name in (
        "value",
        "comment",
        "correction",
        "source_info",
        "source_run_id",
        "user_id",
        "feedback_id",
        "feedback_config",
        "comparative_experiment_id",
        "feedback_group_id",
        "extra",
        "error",
        "session_id",
        "start_time",
        "score",
    ):
        fields.setdefault(name, None)
    record = _checked_record(now_ns, trace_id, span_id, **fields)
    if record is None:  # invalid while the SDK is disabled: nothing to refuse with
        raise InvalidFeedbackError("feedback", "not recorded: the SDK is disabled")
    return RecordedFeedback._made(  # noqa: SLF001 - the handle's maker
        attributes=encode(record),
        id_number=record.id.int,
        time_ns=now_ns,
        trace_id=trace_id,
        span_id=span_id,
        record=record,
    )


class _Off:
    """record_feedback records nothing: the SDK is disabled (OTEL_SDK_DISABLED)."""


_OFF = _Off()


def _target_of(
    span: SpanLike | None, trace_id: IdLike | None, run_id: IdLike | None, traceparent: str | None
) -> Target | _Off:
    """Which run: the current span's, or the one given; _OFF when the SDK is disabled."""
    if span is None and trace_id is None and run_id is None and traceparent is None:
        target = current_target()
        # Only a span that does not record can come from a disabled SDK: the check costs the
        # recording path nothing. (A plain class check: isinstance against the Span ABC is
        # slow.)
        if (target is None or target.__class__ is Remote) and sdk_disabled():
            return _OFF
        return target
    try:
        return resolve_target(span, trace_id, run_id, traceparent)
    except InvalidFeedbackError:
        # A disabled SDK records nothing and refuses nothing. Read only on this rare path:
        # reading the environment is not free.
        if sdk_disabled():
            return _OFF
        raise


def _judged_ids(target: Target) -> tuple[int, int]:
    if target is None:
        return 0, 0
    if target.__class__ is Remote:
        return target.trace_id, target.span_id
    context = target.get_span_context()  # type: ignore[union-attr]
    return context.trace_id, context.span_id


def _hand_off(recorded: RecordedFeedback, target: Target, now_ns: int) -> RecordedFeedback | None:
    """Deliver checked feedback to its run.

    Checked first, delivered second: a bad call fails the same way whether or not its trace
    was sampled, so bugs do not hide behind sampling.
    """
    if target is None:
        # Counted and rate-limited: the first at once, then a sum every 30 s, the rest at exit.
        _not_recorded.report(
            "record_feedback",
            "not recorded: no span current and no run given (tracing off, or no span records it)",
            1,
        )
        return None
    if target.__class__ is Remote:
        return deliver_remote(recorded, target, now_ns)
    put_on_span(target, recorded, now_ns)  # type: ignore[arg-type]
    return recorded


def _plain(
    key: object, score: float | None, value: object, comment: object, source_type: object
) -> bool:
    """Whether these arguments are valid as they are, by checks cheaper than validation.

    False means "validate them", not "invalid": exact classes only, no subclasses.
    """
    if key.__class__ is not str or not 0 < len(key) <= MAX_KEY_CHARS or not _utf8(key):
        return False
    if score is not None:
        kind = score.__class__
        if kind is float:
            if not _NEGATIVE_INFINITY < score < _INFINITY:
                return False  # NaN and the infinities are refused by validation
        elif kind is int:
            if not INT64_MIN <= score <= INT64_MAX:
                return False
        elif kind is not bool:
            return False
    if value is not None and not _plain_text(value, MAX_COMMENT_CHARS):
        return False
    if comment is not None and not _plain_text(comment, MAX_COMMENT_CHARS):
        return False
    return _plain_text(source_type, MAX_KEY_CHARS) and bool(source_type)


def _plain_text(text: object, limit: int) -> bool:
    return text.__class__ is str and len(text) <= limit and _utf8(text)


def _utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (no lone surrogate): ASCII at once."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _checked_record(
    now_ns: int,
    judged_trace: int,
    judged_span: int,
    *,
    key: str,
    score: bool | int | float | None,
    value: bool | int | float | str | dict[str, Any] | None,
    comment: str | None,
    correction: dict[str, Any] | str | None,
    source_type: object,
    source_info: Mapping[str, Any] | None,
    source_run_id: UUIDLike | None,
    user_id: UUIDLike | None,
    feedback_id: UUIDLike | None,
    feedback_config: FeedbackConfig | Mapping[str, Any] | None,
    comparative_experiment_id: UUIDLike | None,
    feedback_group_id: UUIDLike | None,
    extra: dict[str, Any] | None,
    error: bool | None,
    session_id: UUIDLike | None,
    start_time: datetime | None,
) -> Feedback | None:
    """The record of a call beyond the cheap checks, validated now.

    None when it is invalid but the SDK is disabled, which records nothing and refuses nothing.
    """
    try:
        return _validated(
            {
                "id": random_uuid4()
                if feedback_id is None
                else read_argument(as_uuid, feedback_id, "feedback_id"),
                "created_at": datetime_from_ns(now_ns),
                "trace_id": uuid_from_trace_id(judged_trace) if judged_trace else None,
                "run_id": uuid_from_span_id(judged_span) if judged_span else None,
                "key": key,
                "score": score,
                "value": value,
                "comment": comment,
                "correction": correction,
                "feedback_source": _source(source_type, source_info, source_run_id, user_id),
                "session_id": session_id,
                "comparative_experiment_id": comparative_experiment_id,
                "feedback_group_id": feedback_group_id,
                "extra": extra,
                "feedback_config": _as_dict(feedback_config, "feedback_config")
                if isinstance(feedback_config, Mapping)
                else feedback_config,
                "error": error,
                "start_time": start_time,
            }
        )
    except InvalidFeedbackError:
        if sdk_disabled():
            return None
        raise


def _validated(fields: dict[str, Any]) -> Feedback:
    from pydantic import ValidationError  # noqa: PLC0415 - built when first needed

    from otel_feedback._model import Feedback, invalid_feedback  # noqa: PLC0415

    fields["modified_at"] = fields["created_at"]
    try:
        return Feedback.model_validate(fields)
    except ValidationError as exc:
        raise invalid_feedback(exc, rename=_ARGUMENT_OF_FIELD) from None


def _source(
    source_type: object,
    source_info: Mapping[str, Any] | None,
    source_run_id: UUIDLike | None,
    user_id: UUIDLike | None,
) -> dict[str, Any]:
    metadata: dict[str, Any] | None = None
    if source_info is not None:
        if not isinstance(source_info, Mapping):
            raise InvalidFeedbackError(
                "source_info", f"must be a mapping, got {type(source_info).__name__}"
            )
        metadata = _as_dict(source_info, "source_info")
    if source_run_id is not None:
        run_id = read_argument(as_uuid, source_run_id, "source_run_id")
        metadata = metadata or {}
        metadata.setdefault("__run", {"run_id": str(run_id)})
    if not isinstance(source_type, str) or not source_type:
        raise InvalidFeedbackError(
            "feedback_source_type",
            f"must be a non-empty string, got a {type(source_type).__name__}"
            if source_type.__class__ is not str
            else "must be a non-empty string, got ''",
        )
    return {"type": source_type, "metadata": metadata, "user_id": user_id}


def _as_dict(mapping: Mapping[str, Any], argument: str) -> dict[str, Any]:
    """A plain dict of a caller's Mapping, whose methods may raise anything."""
    try:
        return dict(mapping)
    except Exception as exc:  # noqa: BLE001 - any Mapping may raise anything
        raise InvalidFeedbackError(
            argument, f"could not be read as a mapping ({type(exc).__name__}: {exc})"
        ) from None
