"""Lines of an import file, read into ``record_feedback`` arguments, or refused with a reason.

A line is either a whole record in the README's format (as the ``jsonl`` exporter writes it)
or a short one: ``key``, ``score`` and/or ``value``, and the run (``trace_id`` [+ ``run_id``]
or ``traceparent``), with any other ``record_feedback`` argument by its own name.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from otel_feedback._cli._common import parse_score

__all__ = ["Row", "RowError", "read_rows"]

# Ids of lines that carry none are derived from the line itself, so that importing the same
# file again updates those records instead of adding copies.
_LINE_ID_NAMESPACE: Final = uuid.UUID("5c1e7a64-3f0e-4f4c-9b0e-0a8d6f1b2c3d")
_DATETIME: Final = TypeAdapter(datetime)

# Fields of the record (or arguments of record_feedback) taken as they are.
_PLAIN: Final = frozenset(
    {
        "key",
        "score",
        "value",
        "comment",
        "correction",
        "extra",
        "error",
        "session_id",
        "comparative_experiment_id",
        "feedback_group_id",
        "feedback_config",
        "trace_id",
        "run_id",
        "traceparent",
        "feedback_source_type",
        "source_info",
        "source_run_id",
        "user_id",
        "feedback_id",
    }
)
# Fields the exporter writes that are set anew when the record is sent again.
_IGNORED: Final = frozenset({"created_at", "modified_at"})
# CSV cells that hold JSON when they start like JSON.
_JSON_CELLS: Final = frozenset(
    {"correction", "extra", "source_info", "feedback_config", "feedback_source"}
)


class RowError(ValueError):
    """A line that cannot become feedback; the message names the field and the reason."""


@dataclass(frozen=True)
class Row:
    """One line of input: its number, and its arguments or the reason it was refused."""

    line: int
    arguments: dict[str, Any] | None
    error: str | None = None


def read_rows(text: str, kind: str) -> Iterator[Row]:
    """The rows of ``text``, JSON lines (``kind="jsonl"``) or CSV with a header (``"csv"``)."""
    if kind == "csv":
        yield from _csv_rows(text)
    else:
        yield from _jsonl_rows(text)


def _jsonl_rows(text: str) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as error:
            yield Row(number, None, f"not JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(fields, dict):
            yield Row(number, None, f"not a JSON object: {type(fields).__name__}")
            continue
        yield _row(number, fields, line)


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        return
    blank = [name for name in reader.fieldnames if not (name or "").strip()]
    if blank:
        yield Row(1, None, "header: a column has no name")
        return
    start = reader.line_num + 1
    for cells in reader:
        number, start = start, reader.line_num + 1
        extra = cells.pop(None, None)
        if extra:
            yield Row(number, None, f"{len(extra)} cell(s) more than the header has")
            continue
        fields: dict[str, Any] = {}
        try:
            for name, cell in cells.items():
                if cell is None or cell == "":
                    continue
                fields[name.strip()] = _cell(name.strip(), cell)
        except RowError as error:
            yield Row(number, None, str(error))
            continue
        if fields:
            yield _row(number, fields, json.dumps(fields, sort_keys=True))


def _cell(name: str, cell: str) -> Any:
    if name == "score":
        try:
            return parse_score(cell)
        except ValueError as error:
            raise RowError(f"score: {error}") from None
    if name == "error":
        lowered = cell.strip().lower()
        if lowered not in ("true", "false"):
            raise RowError(f"error: must be true or false, got {cell!r}")
        return lowered == "true"
    if name in _JSON_CELLS and cell.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(cell)
        except json.JSONDecodeError as error:
            raise RowError(f"{name}: not JSON: {error.msg}") from None
    return cell


def _row(number: int, fields: dict[str, Any], line: str) -> Row:
    try:
        arguments = _arguments(fields)
    except RowError as error:
        return Row(number, None, str(error))
    if "feedback_id" not in arguments:
        arguments["feedback_id"] = uuid.uuid5(_LINE_ID_NAMESPACE, line.strip())
    return Row(number, arguments)


def _arguments(fields: dict[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None or name in _IGNORED:
            continue
        if name == "id":
            arguments["feedback_id"] = value
        elif name == "feedback_source":
            arguments.update(_source(value))
        elif name == "start_time":
            try:
                arguments["start_time"] = _DATETIME.validate_python(value)
            except ValidationError:
                raise RowError(f"start_time: not a date and time: {value!r}") from None
        elif name in _PLAIN:
            arguments[name] = value
        else:
            raise RowError(f"{name}: unknown field")
    if "key" not in arguments:
        raise RowError("key: missing")
    if "trace_id" not in arguments and "traceparent" not in arguments:
        raise RowError("trace_id: missing (give trace_id [and run_id], or traceparent)")
    return arguments


def _source(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RowError(f"feedback_source: must be an object, got {type(value).__name__}")
    unknown = set(value) - {"type", "metadata", "user_id"}
    if unknown:
        raise RowError(f"feedback_source.{sorted(unknown)[0]}: unknown field")
    arguments: dict[str, Any] = {}
    if value.get("type") is not None:
        arguments["feedback_source_type"] = value["type"]
    if value.get("user_id") is not None:
        arguments["user_id"] = value["user_id"]
    metadata = value.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise RowError("feedback_source.metadata: must be an object")
        metadata = dict(metadata)
        # LangSmith keeps source_run_id inside the metadata; record_feedback takes it apart.
        run = metadata.pop("__run", None)
        if isinstance(run, dict) and run.get("run_id") is not None:
            arguments["source_run_id"] = run["run_id"]
        if metadata:
            arguments["source_info"] = metadata
    return arguments
