"""Conversions between OpenTelemetry ids and LangSmith's UUIDs: the only place they happen.

LangSmith maps an OTLP span to a run by its ids: the run id is the 64-bit span id
right-aligned in 16 zero bytes, the trace id is the 128-bit trace id, each read as a UUID
(``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``). Using the same rule
here means a run exported over OTLP and the feedback about it always agree.
"""

from __future__ import annotations

import random
import re
from uuid import UUID

from otel_feedback._errors import InvalidFeedbackError

__all__ = [
    "IdLike",
    "as_uuid",
    "parse_span_id",
    "parse_trace_id",
    "random_uuid4",
    "random_uuid4_int",
    "uuid_from_span_id",
    "uuid_from_trace_id",
    "uuid_text",
]

_MAX_TRACE_ID = (1 << 128) - 1
_MAX_SPAN_ID = (1 << 64) - 1
_HEX = re.compile(r"[0-9a-fA-F]+")

IdLike = int | str | UUID
"""An OTel id as users hold it: an int, hex digits, or a LangSmith UUID."""


_getrandbits = random.getrandbits
# The version (4) and variant (RFC 4122) bits of a random UUID, as UUID(version=4) sets them.
_V4_KEEP = _MAX_TRACE_ID & ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (4 << 76) | (0x8000 << 48)


def random_uuid4_int() -> int:
    """The 128 bits of a random (version 4) UUID for a new record.

    From the ``random`` module, as the SDK makes its trace ids: unique, not secret, a fraction
    of the cost of ``uuid.uuid4()``. ``random`` reseeds itself in a forked child.
    """
    return (_getrandbits(128) & _V4_KEEP) | _V4_SET


def random_uuid4() -> UUID:
    """A random (version 4) UUID for a new record (see :func:`random_uuid4_int`)."""
    return UUID(int=random_uuid4_int())


def uuid_text(number: int) -> str:
    """``str(UUID(int=number))`` without building the UUID."""
    digits = f"{number:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def uuid_from_trace_id(trace_id: int) -> UUID:
    """The LangSmith ``trace_id`` of an OTel trace id."""
    return UUID(int=trace_id)


def uuid_from_span_id(span_id: int) -> UUID:
    """The LangSmith ``run_id`` of an OTel span id."""
    return UUID(int=span_id)


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


def parse_trace_id(value: object, field: str) -> int:
    """A 128-bit trace id from an int, 32 hex digits, or a UUID (as LangSmith writes it)."""
    return _parse_id(value, field, bits=128)


def parse_span_id(value: object, field: str) -> int:
    """A 64-bit span id from an int, 16 hex digits, or a LangSmith run UUID."""
    return _parse_id(value, field, bits=64)


def _parse_id(value: object, field: str, *, bits: int) -> int:
    digits = bits // 4
    maximum = _MAX_TRACE_ID if bits == 128 else _MAX_SPAN_ID
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, UUID):
        number = value.int
    elif isinstance(value, str):
        text = value.strip()
        if len(text) == 36 and text.count("-") == 4:
            try:
                number = UUID(text).int
            except ValueError:
                number = None
        elif _HEX.fullmatch(text) and len(text) in (digits, 32):
            number = int(text, 16)
    if number is None:
        raise InvalidFeedbackError(
            field, f"must be an int, {digits} hex digits or a UUID, got {value!r}"
        )
    if number == 0:
        raise InvalidFeedbackError(field, "must not be all zeros")
    if not 0 < number <= maximum:
        raise InvalidFeedbackError(
            field, f"out of the {bits}-bit range of OpenTelemetry ids: {value!r}"
        )
    return number
