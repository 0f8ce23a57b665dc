"""Input files as lines: split at line feeds only, each line read alone or refused with a reason.

An ordinary file may hold one bad byte, a binary blob, a line far too long, or text with
U+2028, U+2029 or U+0085 inside a JSON string (the ``jsonl`` exporter writes them as they
are, and JSON allows it). ``str.splitlines()`` would cut those strings in two, and decoding
the whole file at once would lose every line for one bad byte. So the bytes are split at
line feeds (a carriage return before one is dropped), and each line is checked and
decoded alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

__all__ = ["MAX_DEPTH", "MAX_LINE_BYTES", "Line", "depth_error", "lines_of", "lines_of_stream"]

MAX_LINE_BYTES: Final = 8 * 1024 * 1024
"""Longest line read. A record within the library's limits is far shorter (its largest
fields are 256 KiB of JSON each); a longer line is refused without being parsed."""
MAX_DEPTH: Final = 64
"""Deepest nesting of JSON arrays and objects in a line. Feedback needs a few levels; a
line nested thousands deep would exhaust the parser's stack."""
_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Line:
    """One line: its number (from 1), and its text or the reason it cannot be read."""

    number: int
    text: str | None
    error: str | None = None


def lines_of(data: bytes) -> Iterator[Line]:
    """The lines of ``data``; blank lines are skipped but keep their numbers."""
    if data.startswith(_BOM):  # written by some spreadsheet programs
        data = data[len(_BOM) :]
    for index, piece in enumerate(data.split(b"\n")):
        line = _line(index + 1, piece)
        if line is not None:
            yield line


def lines_of_stream(file: IO[bytes]) -> Iterator[Line]:
    """:func:`lines_of` for a file read as it goes: one line in memory at a time.

    A line longer than :data:`MAX_LINE_BYTES` is refused as it is read, never held whole.
    """
    number = 0
    while True:
        piece = file.readline(MAX_LINE_BYTES + 2)
        if not piece:
            return
        number += 1
        if number == 1 and piece.startswith(_BOM):
            piece = piece[len(_BOM) :]
        if not piece.endswith(b"\n") and len(piece) > MAX_LINE_BYTES:
            length = len(piece)
            while piece and not piece.endswith(b"\n"):  # the rest of the line, read and left
                piece = file.readline(MAX_LINE_BYTES)
                length += len(piece)
            yield Line(number, None, f"too long: {length} bytes, at most {MAX_LINE_BYTES}")
            continue
        line = _line(number, piece.removesuffix(b"\n"))
        if line is not None:
            yield line


def _line(number: int, piece: bytes) -> Line | None:
    raw = piece.removesuffix(b"\r")
    if not raw.strip():
        return None
    if len(raw) > MAX_LINE_BYTES:
        return Line(number, None, f"too long: {len(raw)} bytes, at most {MAX_LINE_BYTES}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        return Line(number, None, f"binary data: a NUL byte at column {nul + 1}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        return Line(number, None, f"not UTF-8: byte 0x{byte:02x} at column {error.start + 1}")
    return Line(number, text)


def depth_error(value: Any) -> str | None:
    """The reason ``value`` is nested too deep, or ``None``; iterative, for any depth."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= MAX_DEPTH:
            return f"too deep: JSON nested more than {MAX_DEPTH} levels"
        stack.extend((child, depth + 1) for child in children)
    return None
