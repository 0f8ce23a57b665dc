"""Conversions of ids and times: OpenTelemetry's, LangSmith's UUIDs, hex, traceparent, datetimes.

The only place they happen.

LangSmith maps an OTLP span to a run by its ids: the run id is the 64-bit span id
right-aligned in 16 zero bytes, the trace id is the 128-bit trace id, each read as a UUID
(``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``). Using the same rule
here means a run exported over OTLP and the feedback about it always agree.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timedelta, timezone
from uuid import UUID, SafeUUID, uuid5

from otel_feedback._errors import InvalidFeedbackError

__all__ = [
    "LOW_64_BITS",
    "IdLike",
    "as_uuid",
    "datetime_from_ns",
    "evaluation_feedback_id",
    "id_from_hex",
    "ns_from_datetime",
    "parse_span_id",
    "parse_trace_id",
    "parse_traceparent",
    "random_uuid4",
    "random_uuid4_int",
    "sampling_bound",
    "span_hex",
    "trace_hex",
    "trace_sampled",
    "traceparent_of",
    "uuid_from_span_id",
    "uuid_from_trace_id",
    "uuid_of_int",
    "uuid_text",
]

_MAX_TRACE_ID = (1 << 128) - 1
_MAX_SPAN_ID = (1 << 64) - 1
_HEX = re.compile(r"[0-9a-fA-F]+")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

IdLike = int | str | UUID
"""An OTel id as users hold it: an int, hex digits, or a LangSmith UUID."""


# The version (4) and variant (RFC 4122) bits of a random UUID, as UUID(version=4) sets them.
_V4_KEEP = _MAX_TRACE_ID & ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (4 << 76) | (0x8000 << 48)

# Ids drawn from the operating system's randomness, a few hundred at a time: one
# ``os.urandom`` call costs what some 6 ``random.getrandbits(128)`` do, a draw from the pool a
# third of one. Never the ``random`` module: applications seed it, and a seeded run would
# repeat yesterday's ids (a receiver that de-duplicates on the id then drops the new feedback).
_POOL_SIZE = 256
_BYTE_ORDER = sys.byteorder
# The version and variant masks repeated for every id of a draw, in the byte order in which
# the draw is read, so that one big-integer AND and OR set them for all ids at once.
_POOL_KEEP = int.from_bytes(_V4_KEEP.to_bytes(16, _BYTE_ORDER) * _POOL_SIZE, _BYTE_ORDER)
_POOL_SET = int.from_bytes(_V4_SET.to_bytes(16, _BYTE_ORDER) * _POOL_SIZE, _BYTE_ORDER)
# ``list.pop`` and ``list.extend`` are each one atomic step: threads that draw at once each
# get their own ids, and threads that find the pool empty together each add a draw.
_pool: list[int] = []


def _draw() -> list[int]:
    """``_POOL_SIZE`` new version-4 UUIDs as ints, from one ``os.urandom`` call."""
    size = 16 * _POOL_SIZE
    masked = (int.from_bytes(os.urandom(size), _BYTE_ORDER) & _POOL_KEEP) | _POOL_SET
    # Read as native 64-bit words (in C), two per id: Python then does one shift and one OR
    # per id.
    words = memoryview(masked.to_bytes(size, _BYTE_ORDER)).cast("Q").tolist()
    lows, highs = (
        (words[::2], words[1::2]) if _BYTE_ORDER == "little" else (words[1::2], words[::2])
    )
    return [(high << 64) | low for low, high in zip(lows, highs, strict=True)]


# A forked child starts with a copy of the parent's pool: it must not hand out the ids the
# parent is about to.
os.register_at_fork(after_in_child=_pool.clear)


def random_uuid4_int() -> int:
    """The 128 bits of a random (version 4) UUID for a new record.

    From the operating system's randomness (``os.urandom``), whatever the application does
    to the ``random`` module, and never the same in a forked child as in its parent.
    """
    while True:
        try:
            return _pool.pop()
        except IndexError:  # the pool is empty (other threads may empty it again at once)
            _pool.extend(_draw())


def random_uuid4() -> UUID:
    """A random (version 4) UUID for a new record (see :func:`random_uuid4_int`)."""
    return uuid_of_int(random_uuid4_int())


def uuid_text(number: int) -> str:
    """``str(UUID(int=number))`` without building the UUID."""
    digits = f"{number:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


_new_uuid = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown


def uuid_of_int(number: int) -> UUID:
    """``UUID(int=number)`` for a number known to fit 128 bits, without its checks.

    What ``UUID.__init__`` stores (``int`` and ``is_safe``), set directly: records are made
    in bulk on the export thread, and the constructor's argument handling costs more than
    the rest of a UUID.
    """
    uuid = _new_uuid(UUID)
    _set(uuid, "int", number)
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def uuid_from_trace_id(trace_id: int) -> UUID:
    """The LangSmith ``trace_id`` of an OTel trace id."""
    return uuid_of_int(trace_id)


def uuid_from_span_id(span_id: int) -> UUID:
    """The LangSmith ``run_id`` of an OTel span id."""
    return uuid_of_int(span_id)


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


def trace_hex(trace_id: int) -> str:
    """The 32 lowercase hex digits of a trace id, as OTLP/JSON and W3C write it."""
    return f"{trace_id:032x}"


def span_hex(span_id: int) -> str:
    """The 16 lowercase hex digits of a span id."""
    return f"{span_id:016x}"


def traceparent_of(trace_id: int, span_id: int, *, sampled: bool) -> str:
    """The W3C ``traceparent`` header value of a span (version 00)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def id_from_hex(value: object, field: str) -> int:
    """An id written as hex digits (as in our event attributes).

    Raises:
        InvalidFeedbackError: naming ``field``, for anything but hex digits.
    """
    if isinstance(value, str) and _HEX.fullmatch(value):
        return int(value, 16)
    raise InvalidFeedbackError(field, f"not a hexadecimal id: {value!r}")


def ns_from_datetime(value: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float rounding)."""
    return (value - _EPOCH) // _MICROSECOND * 1000


def datetime_from_ns(value: int) -> datetime:
    """The UTC datetime of a nanosecond timestamp, truncated to microseconds."""
    return _EPOCH + timedelta(microseconds=value // 1000)


def parse_traceparent(value: object, field: str) -> tuple[int, int, bool]:
    """The trace id, span id and sampled flag of a W3C ``traceparent`` header value.

    Raises:
        InvalidFeedbackError: naming ``field``, for anything but a valid traceparent.
    """
    if not isinstance(value, str):
        raise InvalidFeedbackError(field, f"must be a string, got {type(value).__name__}")
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        raise InvalidFeedbackError(
            field, f"not a W3C traceparent (version-traceid-spanid-flags): {value!r}"
        )
    version, trace_digits, span_digits, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        raise InvalidFeedbackError(field, f"unsupported version or format: {value!r}")
    trace_id, span_id = int(trace_digits, 16), int(span_digits, 16)
    if not trace_id or not span_id:
        raise InvalidFeedbackError(field, "must not have an all-zero trace or span id")
    return trace_id, span_id, bool(int(flags, 16) & 1)


# The namespace of evaluation results' ids (uuid5): fixed forever, or re-judging a span
# would stop updating the feedback it gave before.
_EVALUATION_NAMESPACE = UUID("6f7d3c52-2b1e-5f0c-9a55-8d5a3f1e0b7c")


def evaluation_feedback_id(evaluator: str, key: str, trace_id: int, span_id: int) -> UUID:
    """The id of the feedback ``evaluator`` gives under ``key`` on one run, the same each time.

    Judging the same span again (online or offline, in any process) yields the same id, so
    receivers that upsert by id update the feedback rather than add another.
    """
    name = "\x1f".join((evaluator, key, trace_hex(trace_id), span_hex(span_id)))
    return uuid5(_EVALUATION_NAMESPACE, name)


_SAMPLING_BOUND = 1 << 64
LOW_64_BITS = (1 << 64) - 1


def sampling_bound(rate: float) -> int:
    """The bound :func:`trace_sampled` compares a trace id's low 64 bits with, for ``rate``."""
    return _SAMPLING_BOUND if rate >= 1.0 else round(rate * _SAMPLING_BOUND)


def trace_sampled(trace_id: int, rate: float) -> bool:
    """Whether a trace falls within ``rate`` of all traces, decided by its id alone.

    The rule of the SDK's ``TraceIdRatioBased`` sampler (the id's low 64 bits below
    ``rate * 2**64``): every span of a trace, online or offline, in any process, gets the
    same answer, and a trace the SDK kept at the same ratio is judged.
    """
    return (trace_id & LOW_64_BITS) < sampling_bound(rate)
