"""The feedback record: LangSmith's feedback data format as a frozen pydantic model."""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StrictBool,
    ValidationError,
    model_serializer,
    model_validator,
)

from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_COMMENT_CHARS,
    MAX_JSON_CHARS,
    MAX_KEY_CHARS,
)

__all__ = [
    "Feedback",
    "FeedbackCategory",
    "FeedbackConfig",
    "FeedbackSource",
    "checked_feedback",
    "invalid_feedback",
    "source_of_type",
    "with_run_attributes",
]


def _score(score: object) -> bool | int | float | None:
    if score is None:
        return None
    if isinstance(score, str | bytes):
        raise ValueError(f"must be a bool, int or float, got {type(score).__name__}")
    return _checked_number(_plain_number(score))


def _plain_number(value: object) -> bool | int | float:
    """A number as the plain ``bool``, ``int`` or ``float`` it stands for.

    numpy scalars (through ``.item()``), ``numbers.Integral`` and ``__index__`` types as
    ``int``, other ``numbers.Real`` as ``float``: LLM judges and metric code compute with
    them. Anything else, or a number whose methods raise, is refused.
    """
    try:
        if value.__class__ in _PLAIN_NUMBERS:
            return value
        item = getattr(value, "item", None)
        if (
            callable(item)
            and value.__class__.__module__ == "numpy"
            and getattr(value, "ndim", None) == 0
        ):
            value = item()  # a numpy scalar's own Python value (not an array's)
            if value.__class__ in _PLAIN_NUMBERS:
                return value
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, numbers.Integral) or hasattr(type(value), "__index__"):
            return operator.index(value)  # type: ignore[arg-type]
        if isinstance(value, numbers.Real):
            return float(value)
    except Exception as exc:  # noqa: BLE001 - any number type may raise anything
        raise ValueError(f"could not be read as a number ({type(exc).__name__}: {exc})") from None
    raise ValueError(f"must be a bool, int or float, got {type(value).__name__}")


_PLAIN_NUMBERS = (bool, int, float)


def _checked_number(number: bool | int | float) -> bool | int | float:
    if number.__class__ is int:
        if not INT64_MIN <= number <= INT64_MAX:
            # OTLP carries integers as int64; a larger one could never be exported. (The
            # number itself is not quoted: a huge one cannot even be printed.)
            raise ValueError(f"integer out of the signed 64-bit range ({number.bit_length()} bits)")
    elif number.__class__ is float and not math.isfinite(number):
        raise ValueError(f"must be finite, got {number}")
    return number


def _utf8(text: str) -> str:
    # Text that UTF-8 cannot hold (a lone surrogate) would sink every JSON and OTLP writer
    # downstream: refused here, where the caller can see it.
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"cannot be written as UTF-8: a lone surrogate at position {exc.start}"
            ) from None
    return text


def _json_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a dict, got {type(value).__name__}")
    _check_json(value)
    return value


def _check_json(value: object) -> None:
    # Serialise here so that a value the exporters could not write, or would write changed
    # (tuples as lists, int keys as strings), is refused at the call site, where the caller
    # can still see it, rather than dropped or altered in the background.
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        _utf8(text)
        same = json.loads(text) == value
    except ValueError as exc:
        raise ValueError(f"cannot be serialised as JSON ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - the value's own methods may raise anything
        raise ValueError(f"cannot be serialised as JSON ({type(exc).__name__}: {exc})") from None
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"too large: {len(text)} characters as JSON, at most {MAX_JSON_CHARS}")
    if not same:
        raise ValueError(
            "must hold JSON types only (dicts with str keys, lists, str, int, float, bool, "
            "None): it would not read back the same"
        )


def _value(value: object) -> dict[str, Any] | str | bool | int | float | None:
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > MAX_COMMENT_CHARS:
            raise ValueError(f"too long: {len(value)} characters, at most {MAX_COMMENT_CHARS}")
        return _utf8(value)
    if isinstance(value, dict):
        return _json_dict(value)
    if isinstance(value, bytes) or not (
        isinstance(value, numbers.Number)
        or hasattr(value, "item")
        or hasattr(type(value), "__index__")
    ):
        raise ValueError(f"must be a str, bool, int, float or dict, got {type(value).__name__}")
    return _checked_number(_plain_number(value))


def _correction(value: object) -> dict[str, Any] | str | None:
    if isinstance(value, str):
        _check_json(value)
        return value
    if value is None:
        return value
    if isinstance(value, dict):
        return _json_dict(value)
    raise ValueError(f"must be a dict or a str, got {type(value).__name__}")


def _user_id(value: object) -> UUID | str | None:
    if value is None or isinstance(value, UUID):
        return value
    if isinstance(value, str):
        # One canonical form: a user id that is a UUID is held as one, whichever way it came.
        try:
            return UUID(value)
        except ValueError:
            return _utf8(value)
    raise ValueError(f"must be a UUID or a string, got {type(value).__name__}")


def _aware(value: datetime) -> datetime:
    # Naive datetimes are read as UTC, as LangSmith does.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


Score = Annotated[bool | int | float | None, PlainValidator(_score)]
JsonDict = Annotated[dict[str, Any], PlainValidator(_json_dict)]
FeedbackValue = Annotated[dict[str, Any] | str | bool | int | float | None, PlainValidator(_value)]
Correction = Annotated[dict[str, Any] | str | None, PlainValidator(_correction)]
UserId = Annotated[UUID | str | None, PlainValidator(_user_id)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Utf8 = AfterValidator(_utf8)


class FeedbackSource(BaseModel):
    """Who or what gave the feedback (``feedback_source`` in LangSmith's format)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS), Utf8] = "api"
    """Kind of source: ``"api"``, ``"model"`` (an LLM judge), ``"app"`` (an end user), ...."""
    metadata: JsonDict | None = None
    """``source_info``, plus ``{"__run": {"run_id": ...}}`` when a ``source_run_id`` is given."""
    user_id: UserId = None
    """The user who gave the feedback, when known: a UUID when it reads as one."""


class FeedbackCategory(BaseModel):
    """One allowed category of a categorical :class:`FeedbackConfig`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: Annotated[float, Field(allow_inf_nan=False)]
    label: Annotated[str, Utf8] | None = None


class FeedbackConfig(BaseModel):
    """How to read the scores of one key, as LangSmith's ``FeedbackConfig``.

    Example: ``{"type": "continuous", "min": 0, "max": 1}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["continuous", "categorical", "freeform"]
    min: Annotated[float, Field(allow_inf_nan=False)] | None = None
    max: Annotated[float, Field(allow_inf_nan=False)] | None = None
    categories: list[FeedbackCategory] | None = None
    allows_multiple_categories: bool | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # LangSmith's config is a TypedDict with total=False: absent keys, never nulls.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}

    def check_score(self, score: bool | int | float) -> None:
        """Raise :class:`InvalidFeedbackError` when ``score`` is outside this configuration."""
        if self.type == "continuous":
            if self.min is not None and score < self.min:
                raise InvalidFeedbackError(
                    "score", f"{score!r} is below feedback_config min {self.min}"
                )
            if self.max is not None and score > self.max:
                raise InvalidFeedbackError(
                    "score", f"{score!r} is above feedback_config max {self.max}"
                )
        elif self.type == "categorical" and self.categories:
            allowed = [c.value for c in self.categories]
            if score not in allowed:
                raise InvalidFeedbackError(
                    "score", f"{score!r} is not one of the feedback_config categories {allowed}"
                )


# Fields of create_feedback beyond the seed's record: written only when given, so that a
# plain record serialises to exactly the seed's JSON.
_OPTIONAL_FIELDS = frozenset(
    {
        "comparative_experiment_id",
        "feedback_group_id",
        "extra",
        "feedback_config",
        "error",
        "start_time",
    }
)


class Feedback(BaseModel):
    """One feedback record, serialised exactly as LangSmith's feedback data format.

    ``trace_id`` and ``run_id`` are the evaluated span's OpenTelemetry ids read as UUIDs
    (``UUID(int=trace_id)``, ``UUID(int=span_id)``). ``run_id`` is the id LangSmith gives the
    run it ingests from that span; LangSmith's own ``trace_id`` for such a run is its root
    run's id, not this one.

    Example::

        record.model_dump_json()  # '{"id": "...", "key": "correctness", "score": 1, ...}'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    """Unique id of this record; receivers de-duplicate on it."""
    created_at: AwareDatetime
    """When the feedback was recorded."""
    modified_at: AwareDatetime
    """When the record last changed (equal to ``created_at`` for a new record)."""
    session_id: UUID | None = None
    """The tracing project (LangSmith session) of the run, when known."""
    run_id: UUID | None = None
    """The evaluated run: ``UUID(int=span_id)``. ``None`` for feedback on a whole trace."""
    trace_id: UUID | None = None
    """The evaluated trace: ``UUID(int=trace_id)``."""
    key: Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS), Utf8]
    """The metric's name, e.g. ``"correctness"`` or ``"user_rating"``."""
    score: Score = None
    """The numeric score; ``bool``, ``int`` and ``float`` stay distinct."""
    value: FeedbackValue = None
    """A display or non-numeric value: a category label, a number, or a JSON object."""
    comment: Annotated[str, Field(max_length=MAX_COMMENT_CHARS), Utf8] | None = None
    """A justification for the score, or a judge's reasoning."""
    correction: Correction = None
    """The ground truth the run should have produced."""
    feedback_source: FeedbackSource | None = None
    """Who or what gave the feedback."""
    comparative_experiment_id: UUID | None = None
    """The comparative experiment this feedback belongs to."""
    feedback_group_id: UUID | None = None
    """Groups the feedback of one preference or ranking decision."""
    extra: JsonDict | None = None
    """Metadata about the feedback itself."""
    feedback_config: FeedbackConfig | None = None
    """How to read the scores of this key; ``score`` is checked against it."""
    error: StrictBool | None = None
    """Whether the evaluation itself errored."""
    start_time: AwareDatetime | None = None
    """Start time of the evaluated run."""

    # Not a field of LangSmith's format: kept beside the record, never serialised with it.
    _run_attributes: Mapping[str, str] | None = PrivateAttr(default=None)

    @property
    def run_attributes(self) -> Mapping[str, str]:
        """Attributes of the judged span that name it elsewhere, when it had them.

        ``gen_ai.response.id`` (the judged model call's response, which log-only readers
        correlate on), ``langsmith.span.id`` and ``langsmith.trace.id`` (the ids LangSmith
        gave the run instead of the span's). Copied when the judged span ends, or from the
        span given to ``record_feedback(span=...)``. Not part of the record's JSON: the
        OTLP exporter sends them as log attributes, the LangSmith exporter uses its ids.
        """
        return self._run_attributes or _NO_RUN_ATTRIBUTES

    @model_validator(mode="after")
    def _score_fits_config(self) -> Feedback:
        if self.feedback_config is not None and self.score is not None:
            self.feedback_config.check_score(self.score)
        return self

    @model_serializer(mode="wrap")
    def _seed_shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in _OPTIONAL_FIELDS:
            if data.get(name, 0) is None:
                del data[name]
        return data


_NO_RUN_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})
_NO_PRIVATE: dict[str, Any] = {"_run_attributes": None}
_FIELD_NAMES = tuple(Feedback.model_fields)
_NO_FIELDS = dict.fromkeys(_FIELD_NAMES)
_new_object = object.__new__
_set = object.__setattr__


def checked_feedback(**values: Any) -> Feedback:
    """A :class:`Feedback` from values that already passed its validation rules.

    For the records of plain calls, whose every value record_feedback checked: what
    ``model_construct`` does (the same instance attributes, every field marked set, as full
    validation of record_feedback's arguments marks them), without its per-field Python loop,
    which costs more than validating. Values must be exactly what validation would return.
    """
    record = _new_object(Feedback)
    _set(record, "__dict__", {**_NO_FIELDS, **values})
    _set(record, "__pydantic_fields_set__", set(_FIELD_NAMES))
    _set(record, "__pydantic_extra__", None)
    # One shared dict, never changed in place (with_run_attributes sets them on a copy, which
    # gets its own): a dict per record would add to every garbage collection.
    _set(record, "__pydantic_private__", _NO_PRIVATE)
    return record


def with_run_attributes(record: Feedback, attributes: Mapping[str, str] | None) -> Feedback:
    """``record`` with the judged span's ``attributes`` (a copy when it had others)."""
    if not attributes or record._run_attributes == attributes:  # noqa: SLF001
        return record
    # A copy: the record may be the caller's own (``RecordedFeedback.to_feedback()``).
    copy = record.model_copy()
    copy._run_attributes = MappingProxyType(dict(attributes))  # noqa: SLF001
    return copy


_SOURCES: dict[str, FeedbackSource] = {}
_MAX_SOURCES = 64


def source_of_type(source_type: str) -> FeedbackSource:
    """The shared ``FeedbackSource`` of a checked type (the model is frozen), for plain records."""
    source = _SOURCES.get(source_type)
    if source is None:
        source = FeedbackSource(type=source_type)
        if len(_SOURCES) < _MAX_SOURCES:
            _SOURCES[source_type] = source
    return source


def invalid_feedback(
    error: ValidationError, *, rename: Mapping[str, str] | None = None
) -> InvalidFeedbackError:
    """Turn pydantic's report into one :class:`InvalidFeedbackError` naming the first field.

    ``rename`` maps a record field's dotted path to the argument the caller used for it.
    """
    first = error.errors(include_url=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, InvalidFeedbackError):
        return cause
    loc = ".".join(str(part) for part in first["loc"])
    if rename:
        for path, argument in rename.items():
            if loc == path or loc.startswith(path + "."):
                loc = argument + loc[len(path) :]
                break
    message = first["msg"].removeprefix("Value error, ")
    # Our own checks quote the input already; pydantic's built-in ones do not.
    if first["type"] not in {"value_error", "missing"}:
        message = f"{message} (got {_short(first['input'])})"
    return InvalidFeedbackError(loc or "feedback", message)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a caller's object may raise anything from its repr
        return f"a {type(value).__name__} that cannot be shown"
    if not isinstance(text, str):
        return f"a {type(value).__name__} that cannot be shown"
    return text if len(text) <= 80 else text[:77] + "..."
