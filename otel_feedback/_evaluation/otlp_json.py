"""Runs read from stored traces in OTLP/JSON, as the OpenTelemetry Collector's file exporter writes.

One line of such a file is one ``ExportTraceServiceRequest`` in the OTLP/JSON encoding
(https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): lowerCamelCase field names,
trace and span ids as hex digits, 64-bit integers as decimal strings (numbers are taken too),
enums as integers (their ``SPAN_KIND_...`` / ``STATUS_CODE_...`` names are taken too, which
some writers emit). Attribute values become what the OpenTelemetry SDK holds for a span that
ended in the process: ``str``, ``bool``, ``int``, ``float``, ``bytes`` and tuples of them (a
``kvlistValue``, which a span's attributes cannot hold in the SDK, becomes a dict), so a run read
here equals the run :meth:`JudgedRun.from_span` reads from the span before it was exported.

A malformed span does not hide the others: :func:`runs_of_otlp_json` yields an
:class:`InvalidSpanError` in its place and goes on.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from otel_feedback._evaluation.conventions import read_content
from otel_feedback._evaluation.judged import (
    JudgedRun,
    RunEvent,
    read_only,
    run_error,
    run_kind,
)
from otel_feedback._ids import datetime_from_ns

__all__ = ["InvalidSpanError", "runs_of_otlp_json"]

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_INTEGER = re.compile(r"-?[0-9]+")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
# Protobuf's JSON writes these three doubles as strings.
_SPECIAL_DOUBLES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# The OTLP enums, by number and by name (the SDK's SpanKind names, lowercased).
_SPAN_KINDS: Final = {
    # SPAN_KIND_UNSPECIFIED: the specification lets a receiver take it as INTERNAL.
    0: "internal",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
_SPAN_KIND_NAMES: Final = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES: Final = {0: "unset", 1: "ok", 2: "error"}
_STATUS_CODE_NAMES: Final = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
# Nested array and kvlist values deeper than this are refused, not followed: a hostile file
# must not exhaust the stack.
_MAX_DEPTH = 32


class InvalidSpanError(ValueError):
    """A span (or the resource or scope around it) of an OTLP/JSON document is malformed.

    The message starts with the path of the bad field in the document and says what is
    wrong, e.g. ``resourceSpans[0].scopeSpans[1].spans[3].traceId: not 32 hex digits``. The
    path and the reason are also kept in :attr:`path` and :attr:`reason`.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def runs_of_otlp_json(document: Mapping[str, Any]) -> Iterator[JudgedRun | InvalidSpanError]:
    """The runs of one parsed OTLP/JSON ``ExportTraceServiceRequest``, in document order.

    Each span gives a :class:`JudgedRun` or, when it is malformed (a missing or invalid id, a
    field of the wrong type, an attribute value that is no AnyValue), an
    :class:`InvalidSpanError` naming the field: yielded, not raised, so that the spans after
    a bad one are still read. A bad resource or scope gives one error in place of all its
    spans; a document that is not an object whose ``resourceSpans`` is a list gives one error
    and nothing else. Nothing is raised.
    """
    if not isinstance(document, Mapping):
        yield InvalidSpanError("(document)", f"not a JSON object: {type(document).__name__}")
        return
    resource_spans = document.get("resourceSpans", [])
    if not isinstance(resource_spans, list):
        yield InvalidSpanError("resourceSpans", _not("a list", resource_spans))
        return
    for r, resource_span in enumerate(resource_spans):
        r_path = f"resourceSpans[{r}]"
        try:
            resource, scope_spans = _resource_of(resource_span, r_path)
        except InvalidSpanError as error:
            yield error
            continue
        for s, scope_span in enumerate(scope_spans):
            s_path = f"{r_path}.scopeSpans[{s}]"
            try:
                scope, spans = _scope_of(scope_span, s_path)
            except InvalidSpanError as error:
                yield error
                continue
            for n, span in enumerate(spans):
                try:
                    yield _run_of(span, f"{s_path}.spans[{n}]", resource, scope)
                except InvalidSpanError as error:
                    yield error


def _not(expected: str, value: Any) -> str:
    return f"not {expected}: {type(value).__name__}"


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpanError(path, _not("an object", value))
    return value


def _list(container: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = container.get(key, [])
    if not isinstance(value, list):
        raise InvalidSpanError(f"{path}.{key}", _not("a list", value))
    return value


def _resource_of(value: Any, path: str) -> tuple[Mapping[str, Any], list[Any]]:
    resource_span = _object(value, path)
    resource = _object(resource_span.get("resource", {}), f"{path}.resource")
    attributes = _attributes(resource, f"{path}.resource")
    return read_only(attributes), _list(resource_span, "scopeSpans", path)


def _scope_of(value: Any, path: str) -> tuple[str | None, list[Any]]:
    scope_span = _object(value, path)
    scope = _object(scope_span.get("scope", {}), f"{path}.scope")
    name = scope.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidSpanError(f"{path}.scope.name", _not("a string", name))
    return (name or None), _list(scope_span, "spans", path)


def _run_of(value: Any, path: str, resource: Mapping[str, Any], scope: str | None) -> JudgedRun:
    span = _object(value, path)
    trace_id = _id(span.get("traceId"), f"{path}.traceId", _TRACE_ID, 32)
    span_id = _id(span.get("spanId"), f"{path}.spanId", _SPAN_ID, 16)
    parent = span.get("parentSpanId")
    parent_span_id = (
        _id(parent, f"{path}.parentSpanId", _SPAN_ID, 16) if parent not in (None, "") else None
    )
    name = span.get("name", "")
    if not isinstance(name, str):
        raise InvalidSpanError(f"{path}.name", _not("a string", name))
    span_kind = _SPAN_KINDS[_enum(span.get("kind"), f"{path}.kind", _SPAN_KIND_NAMES, 5)]
    status_code, description = _status(span.get("status"), f"{path}.status")
    start = _time(span.get("startTimeUnixNano"), f"{path}.startTimeUnixNano")
    end = _time(span.get("endTimeUnixNano"), f"{path}.endTimeUnixNano")
    attributes = read_only(_attributes(span, path))
    events = tuple(
        _event(event, f"{path}.events[{e}]") for e, event in enumerate(_list(span, "events", path))
    )
    status = _STATUS_CODES[status_code]
    content = read_content(attributes, events)
    return JudgedRun(
        name=name,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        kind=run_kind(attributes),
        span_kind=span_kind,
        status=status,
        error=run_error(status, description, events),
        start_time=datetime_from_ns(start) if start else None,
        end_time=datetime_from_ns(end) if end else None,
        attributes=attributes,
        events=events,
        resource=resource,
        scope=scope,
        inputs=content.inputs,
        outputs=content.outputs,
        convention=content.convention,
        input_text=content.input_text,
        output_text=content.output_text,
    )


def _id(value: Any, path: str, pattern: re.Pattern[str], digits: int) -> int:
    if value is None:
        raise InvalidSpanError(path, "missing")
    if not isinstance(value, str):
        raise InvalidSpanError(path, _not(f"a string of {digits} hex digits", value))
    if not pattern.fullmatch(value):
        raise InvalidSpanError(path, f"not {digits} hex digits: {value[:40]!r}")
    number = int(value, 16)
    if number == 0:
        raise InvalidSpanError(path, "all zeros (an invalid id)")
    return number


def _enum(value: Any, path: str, names: Mapping[str, int], highest: int) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= highest:
        return value
    raise InvalidSpanError(path, f"not a known enum value: {value!r}"[:200])


def _status(value: Any, path: str) -> tuple[int, str | None]:
    if value is None:
        return 0, None
    status = _object(value, path)
    code = _enum(status.get("code"), f"{path}.code", _STATUS_CODE_NAMES, 2)
    message = status.get("message")
    if message is not None and not isinstance(message, str):
        raise InvalidSpanError(f"{path}.message", _not("a string", message))
    return code, message or None


def _integer(value: Any, path: str, low: int, high: int) -> int:
    """An int64 or uint64 written as a decimal string (the spec) or a JSON number."""
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise InvalidSpanError(path, f"not an integer: {value!r}"[:200])
    if not low <= number <= high:
        raise InvalidSpanError(path, f"out of range: {number}"[:200])
    return number


def _time(value: Any, path: str) -> int | None:
    return None if value is None else _integer(value, path, 0, _UINT64_MAX)


def _event(value: Any, path: str) -> RunEvent:
    event = _object(value, path)
    name = event.get("name", "")
    if not isinstance(name, str):
        raise InvalidSpanError(f"{path}.name", _not("a string", name))
    time = _time(event.get("timeUnixNano"), f"{path}.timeUnixNano")
    return RunEvent(
        name, datetime_from_ns(time) if time else None, read_only(_attributes(event, path))
    )


def _attributes(container: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The ``attributes`` (KeyValues) of a span, event or resource, as the SDK holds them."""
    return _key_values(_list(container, "attributes", path), f"{path}.attributes", 0)


def _key_values(items: list[Any], path: str, depth: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for a, item in enumerate(items):
        item_path = f"{path}[{a}]"
        pair = _object(item, item_path)
        key = pair.get("key")
        if not isinstance(key, str):
            raise InvalidSpanError(f"{item_path}.key", _not("a string", key))
        value = _any_value(pair.get("value", {}), f"{item_path}.value", depth)
        # An empty AnyValue: the SDK drops None attribute values, so the key is not kept.
        if value is not None:
            values[key] = value
    return values


def _any_value(value: Any, path: str, depth: int) -> Any:
    """The Python value of an OTLP/JSON AnyValue."""
    any_value = _object(value, path)
    if not any_value:
        return None
    if len(any_value) != 1:
        raise InvalidSpanError(path, f"not one AnyValue field: {sorted(any_value)}"[:200])
    ((field, inner),) = any_value.items()
    inner_path = f"{path}.{field}"
    if field == "stringValue":
        if not isinstance(inner, str):
            raise InvalidSpanError(inner_path, _not("a string", inner))
        return inner
    if field == "boolValue":
        if not isinstance(inner, bool):
            raise InvalidSpanError(inner_path, _not("a boolean", inner))
        return inner
    if field == "intValue":
        return _integer(inner, inner_path, _INT64_MIN, _INT64_MAX)
    if field == "doubleValue":
        return _double(inner, inner_path)
    if field == "bytesValue":
        if not isinstance(inner, str):
            raise InvalidSpanError(inner_path, _not("a base64 string", inner))
        try:
            return base64.b64decode(inner, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSpanError(inner_path, "not base64") from None
    if field in ("arrayValue", "kvlistValue"):
        if depth >= _MAX_DEPTH:
            raise InvalidSpanError(inner_path, f"nested deeper than {_MAX_DEPTH} values")
        values = _list(_object(inner, inner_path), "values", inner_path)
        if field == "arrayValue":
            return tuple(
                _any_value(item, f"{inner_path}.values[{i}]", depth + 1)
                for i, item in enumerate(values)
            )
        return _key_values(values, f"{inner_path}.values", depth + 1)
    raise InvalidSpanError(inner_path, "not an AnyValue field")


def _double(value: Any, path: str) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidSpanError(path, f"not a number: {value!r}"[:200])
