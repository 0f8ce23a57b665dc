"""RecordedFeedback: what record_feedback returns, a light handle on the event it wrote.

Recording must cost little more than the span event it writes, so the handle holds that
event's attributes, its time and the judged run, nothing more: the pydantic
:class:`Feedback` is built from them when it is needed, in the background when it is
exported, or when the caller asks for it. Feedback with arguments beyond the plain ones is
validated into a record on the call, and the handle keeps that record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from opentelemetry.util.types import AttributeValue

from otel_feedback._attributes import ATTR_KEY, ATTR_LANGSMITH_TRACE_ID
from otel_feedback._ids import (
    datetime_from_ns,
    uuid_from_span_id,
    uuid_from_trace_id,
    uuid_of_int,
)
from otel_feedback._recording.roots import real_root_of

if TYPE_CHECKING:
    from otel_feedback._model import Feedback

__all__ = ["RecordedFeedback"]

_new = object.__new__


class RecordedFeedback:
    """Feedback that :func:`record_feedback` recorded: its id and run now, its record on demand.

    Made by :func:`record_feedback` only. The arguments were checked when the feedback was
    recorded, so building the record cannot fail; ``to_feedback()`` builds one equal to the
    record the exporters receive.

    Example::

        recorded = record_feedback("correctness", score=1)
        recorded.id              # UUID('...'), what receivers de-duplicate on
        recorded.to_feedback()   # Feedback(id=..., key='correctness', score=1, ...)
    """

    __slots__ = ("_attributes", "_id", "_record", "_run", "_span_id", "_time_ns", "_trace_id")

    _attributes: Mapping[str, AttributeValue]
    _id: int
    _time_ns: int
    _trace_id: int
    _span_id: int
    _record: Feedback | None
    # The judged span's correlation attributes (gen_ai.response.id, ...), set when it ends;
    # for a whole trace, its root run as LangSmith's trace id when known.
    _run: Mapping[str, str] | None

    def __init__(self) -> None:
        raise TypeError("RecordedFeedback is made by record_feedback(), not directly")

    @classmethod
    def _made(
        cls,
        *,
        attributes: Mapping[str, AttributeValue],
        id_number: int,
        time_ns: int,
        trace_id: int,
        span_id: int,
        record: Feedback | None,
    ) -> RecordedFeedback:
        """The handle of feedback whose event has ``attributes``, about the run given."""
        self = _new(cls)
        self._attributes = attributes
        self._id = id_number
        self._time_ns = time_ns
        self._trace_id = trace_id
        self._span_id = span_id
        self._record = record
        # Feedback on a whole trace carries the trace's root, when known here, as LangSmith's
        # id of the trace: LangSmith keeps it on that root run.
        root = 0 if span_id else real_root_of(trace_id)
        self._run = {ATTR_LANGSMITH_TRACE_ID: str(uuid_from_span_id(root))} if root else None
        return self

    @property
    def id(self) -> UUID:
        """The record's id; receivers de-duplicate on it."""
        return uuid_of_int(self._id)

    @property
    def key(self) -> str:
        """The metric's name."""
        return str(self._attributes[ATTR_KEY])

    @property
    def trace_id(self) -> UUID | None:
        """The judged trace, as the record holds it (``UUID(int=trace_id)``)."""
        return uuid_from_trace_id(self._trace_id) if self._trace_id else None

    @property
    def run_id(self) -> UUID | None:
        """The judged run (``UUID(int=span_id)``); ``None`` for feedback on a whole trace."""
        return uuid_from_span_id(self._span_id) if self._span_id else None

    @property
    def created_at(self) -> datetime:
        """When the feedback was recorded (microseconds, UTC)."""
        return datetime_from_ns(self._time_ns)

    def to_feedback(self) -> Feedback:
        """The full record, equal to the one the exporters receive."""
        record = self._record
        if record is None:
            from otel_feedback._decode import decode_plain  # noqa: PLC0415 - pydantic, when needed

            # Only plain calls come without a record. Built afresh each time (the exporters
            # get their own): it is rarely asked for twice.
            record = decode_plain(
                self._attributes,
                id_number=self._id,
                timestamp_ns=self._time_ns,
                trace_id=self._trace_id,
                span_id=self._span_id,
            )
        if self._run is None:
            return record
        from otel_feedback._model import with_run_attributes  # noqa: PLC0415

        return with_run_attributes(record, self._run)

    def __repr__(self) -> str:
        return (
            f"RecordedFeedback(key={self.key!r}, id={self.id!r}, "
            f"trace_id={self.trace_id!r}, run_id={self.run_id!r})"
        )
