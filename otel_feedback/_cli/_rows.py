"""Lines of an import file, read into ``record_feedback`` arguments, or refused with a reason.

A line is either a whole record in the README's format (as the ``jsonl`` exporter writes it)
or a short one: ``key``, ``score`` and/or ``value``, and the run (``trace_id`` [+ ``run_id``]
or ``traceparent``), with any other ``record_feedback`` argument by its own name.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from otel_feedback._cli._common import parse_score
from otel_feedback._cli._input import MAX_DEPTH, MAX_LINE_BYTES, depth_error, lines_of

__all__ = ["Row", "RowError", "parse_json_line", "read_rows"]

# Ids of lines that carry none are derived from the line itself, so that importing the same
# file again updates those records instead of adding copies.
_LINE_ID_NAMESPACE: Final = uuid.UUID("5c1e7a64-3f0e-4f4c-9b0e-0a8d6f1b2c3d")
_DATETIME: Final = TypeAdapter(datetime)
_BOM: Final = b"\xef\xbb\xbf"

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


def read_rows(data: bytes, kind: str) -> Iterator[Row]:
    """The rows of ``data``, JSON lines (``kind="jsonl"``) or CSV with a header (``"csv"``).

    Never raises for what the file holds: a line that cannot be read is a row with a reason.
    """
    if kind == "csv":
        yield from _csv_rows(data)
    else:
        yield from _jsonl_rows(data)


def parse_json_line(text: str) -> tuple[Any, str | None]:
    """A JSON line's value, or the reason it cannot be one (not JSON, too deep)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"not JSON: {error.msg} at column {error.colno}"
    except RecursionError:
        return None, f"too deep: JSON nested more than {MAX_DEPTH} levels"
    return value, depth_error(value)


def _jsonl_rows(data: bytes) -> Iterator[Row]:
    for line in lines_of(data):
        if line.text is None:
            yield Row(line.number, None, line.error)
            continue
        fields, error = parse_json_line(line.text)
        if error is not None:
            yield Row(line.number, None, error)
        elif not isinstance(fields, dict):
            yield Row(line.number, None, f"not a JSON object: {type(fields).__name__}")
        else:
            yield _row(line.number, fields, line.text)


class _Numbered:
    """Physical lines (split at line feeds only) for the csv module, counting them.

    Bytes that are not UTF-8 are kept as lone surrogates, so that the record holding them
    is refused alone, by its line number.
    """

    def __init__(self, data: bytes) -> None:
        if data.startswith(_BOM):
            data = data[len(_BOM) :]
        self._pieces = data.split(b"\n")
        if self._pieces and not self._pieces[-1]:
            self._pieces.pop()  # the end of the last line, not a line
        self.read = 0

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self.read += 1
            yield piece.decode("utf-8", "surrogateescape") + "\n"


def _csv_rows(data: bytes) -> Iterator[Row]:
    csv.field_size_limit(MAX_LINE_BYTES)
    lines = _Numbered(data)
    reader = csv.reader(lines)
    header: list[str] | None = None
    header_error: str | None = None
    while True:
        start = lines.read + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Row(start, None, f"not CSV: {error}")
            continue
        if not cells:
            continue
        if header is None and header_error is None:
            header_error = _cells_error(cells) or _header_error(cells)
            if header_error is not None:
                yield Row(start, None, f"header: {header_error}")
            else:
                header = [name.strip() for name in cells]
            continue
        if header is None:
            yield Row(start, None, "not read: the header on the first line is unusable")
            continue
        yield _csv_row(start, header, cells)


def _cells_error(cells: list[str]) -> str | None:
    size = 0
    for column, cell in enumerate(cells, start=1):
        if "\x00" in cell:
            return f"binary data: a NUL byte in column {column}"
        try:
            size += len(cell.encode("utf-8"))
        except UnicodeEncodeError as error:
            byte = ord(cell[error.start]) - 0xDC00
            return f"not UTF-8: byte 0x{byte:02x} in column {column}"
    if size > MAX_LINE_BYTES:
        return f"too long: {size} bytes, at most {MAX_LINE_BYTES}"
    return None


def _header_error(cells: list[str]) -> str | None:
    if any(not name.strip() for name in cells):
        return "a column has no name"
    return None


def _csv_row(number: int, header: list[str], cells: list[str]) -> Row:
    error = _cells_error(cells)
    if error is not None:
        return Row(number, None, error)
    if len(cells) > len(header):
        return Row(number, None, f"{len(cells) - len(header)} cell(s) more than the header has")
    fields: dict[str, Any] = {}
    try:
        for name, cell in zip(header, cells, strict=False):
            if cell == "":
                continue
            fields[name] = _cell(name, cell)
    except RowError as error:
        return Row(number, None, str(error))
    if not fields:
        return Row(number, None, "no cell has a value")
    return _row(number, fields, json.dumps(fields, sort_keys=True))


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
        value, reason = parse_json_line(cell)
        if reason is not None:
            raise RowError(f"{name}: {reason}")
        return value
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
