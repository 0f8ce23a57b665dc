"""Conversions between OpenTelemetry ids and LangSmith's UUIDs: the only place they happen.

LangSmith maps an OTLP span to a run by its ids: the run id is the 64-bit span id
right-aligned in 16 zero bytes, the trace id is the 128-bit trace id, each read as a UUID
(``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``). Using the same rule
here means a run exported over OTLP and the feedback about it always agree.
"""

from __future__ import annotations

from uuid import UUID

from otel_feedback._errors import InvalidFeedbackError

__all__ = [
    "as_uuid",
    "span_id_from_uuid",
    "trace_id_from_uuid",
    "uuid_from_span_id",
    "uuid_from_trace_id",
]

_MAX_SPAN_ID = (1 << 64) - 1


def uuid_from_trace_id(trace_id: int) -> UUID:
    """The LangSmith ``trace_id`` of an OTel trace id."""
    return UUID(int=trace_id)


def uuid_from_span_id(span_id: int) -> UUID:
    """The LangSmith ``run_id`` of an OTel span id."""
    return UUID(int=span_id)


def trace_id_from_uuid(value: UUID) -> int:
    """The OTel trace id behind a LangSmith ``trace_id``."""
    return value.int


def span_id_from_uuid(value: UUID, *, field: str = "run_id") -> int:
    """The OTel span id behind a LangSmith ``run_id``.

    Raises:
        InvalidFeedbackError: the UUID does not come from a span id (its upper 8 bytes
            are not zero), so no OTel span can be its run.
    """
    if value.int > _MAX_SPAN_ID:
        raise InvalidFeedbackError(
            field, f"{value} is not an OpenTelemetry span id (its first 8 bytes must be zero)"
        )
    return value.int


def as_uuid(value: object, field: str) -> UUID:
    """Read a UUID given as a :class:`~uuid.UUID` or its string form.

    Raises:
        InvalidFeedbackError: naming ``field``, for anything else.
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise InvalidFeedbackError(field, f"not a UUID: {value!r}") from None
    raise InvalidFeedbackError(
        field, f"must be a UUID or a UUID string, got {type(value).__name__}"
    )
