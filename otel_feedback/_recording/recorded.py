"""RecordedFeedback: what record_feedback returns; the full record is built when needed.

Recording must cost little more than the span event it writes, so a call with plain
arguments (a key, a score, a string value, a comment) only checks them and keeps them: the
pydantic :class:`Feedback` is built later, in the background when it is exported, or when the
caller asks for it. Other arguments are validated into a :class:`Feedback` at once.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from opentelemetry.util.types import AttributeValue

from otel_feedback._codec import datetime_from_ns, encode, encode_plain
from otel_feedback._ids import uuid_from_span_id, uuid_from_trace_id
from otel_feedback._model import Feedback, FeedbackSource, checked_feedback

__all__ = ["RecordedFeedback"]


class RecordedFeedback:
    """Feedback that :func:`record_feedback` recorded: its id and run now, its record on demand.

    The arguments were checked when the feedback was recorded, so building the record cannot
    fail. Feedback with plain values (a key, a score, a string value, a comment) builds its
    record in the background, when it is exported; ``to_feedback()`` builds an equal one.

    Example::

        recorded = record_feedback("correctness", score=1)
        recorded.id              # UUID('...'), what receivers de-duplicate on
        recorded.to_feedback()   # Feedback(id=..., key='correctness', score=1, ...)
    """

    __slots__ = (
        "_comment",
        "_id",
        "_id_text",
        "_key",
        "_record",
        "_score",
        "_source",
        "_span_id",
        "_time_ns",
        "_trace_id",
        "_value",
    )

    def __init__(  # noqa: PLR0917 - on the recording path, where keywords cost time
        self,
        key: str,
        id_number: int,
        id_text: str,
        time_ns: int,
        trace_id: int,
        span_id: int,
        score: bool | int | float | None,
        value: str | None,
        comment: str | None,
        source: FeedbackSource | None,
        record: Feedback | None = None,
    ) -> None:
        """Made by :func:`record_feedback` only: from checked plain values, or a record."""
        self._key = key
        self._id = id_number
        self._id_text = id_text
        self._time_ns = time_ns
        self._trace_id = trace_id
        self._span_id = span_id
        self._score = score
        self._value = value
        self._comment = comment
        self._source = source
        self._record = record

    @classmethod
    def of(cls, record: Feedback, time_ns: int, trace_id: int, span_id: int) -> RecordedFeedback:
        """The recorded form of an already validated record."""
        return cls(
            record.key,
            record.id.int,
            str(record.id),
            time_ns,
            trace_id,
            span_id,
            None,
            None,
            None,
            None,
            record,
        )

    @property
    def id(self) -> UUID:
        """The record's id; receivers de-duplicate on it."""
        return UUID(int=self._id)

    @property
    def key(self) -> str:
        """The metric's name."""
        return self._key

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
            # Built afresh each time (the exporters get their own): it is rarely asked for.
            created_at = datetime_from_ns(self._time_ns)
            record = checked_feedback(
                id=UUID(int=self._id),
                created_at=created_at,
                modified_at=created_at,
                trace_id=self.trace_id,
                run_id=self.run_id,
                key=self._key,
                score=self._score,
                value=self._value,
                comment=self._comment,
                feedback_source=self._source,
            )
        return record

    def _event_attributes(self) -> dict[str, AttributeValue]:
        """The attributes of this feedback's ``gen_ai.evaluation.result`` event."""
        source = self._source
        if source is None:
            return encode(self.to_feedback())
        return encode_plain(
            self._key, self._id_text, self._score, self._value, self._comment, source.type
        )

    def __repr__(self) -> str:
        return (
            f"RecordedFeedback(key={self._key!r}, id={self._id_text!r}, "
            f"trace_id={self._trace_id:032x}, run_id={self._span_id:016x})"
        )
