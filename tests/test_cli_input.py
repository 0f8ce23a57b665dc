"""``import`` and ``summary`` on the files users have: bad bytes, binary, huge or deep lines.

Every line is accounted for: delivered (or counted), or refused by its number and reason;
neither command raises. The commands run as users run them, in a process of their own.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from otel_feedback import Feedback, JsonlFeedbackExporter
from otel_feedback._cli._input import MAX_DEPTH, MAX_LINE_BYTES
from tests.test_cli import RUN, TRACE, run

SEPARATORS = ("\u2028", "\u2029", "\u0085")


def good(i: int, **fields: Any) -> str:
    return json.dumps({"key": "k", "score": i, "trace_id": TRACE, "run_id": RUN, **fields})


def to_jsonl(tmp_path: Path) -> dict[str, str]:
    return {
        "OTEL_PYTHON_FEEDBACK_EXPORTER": "jsonl",
        "OTEL_PYTHON_FEEDBACK_JSONL_PATH": str(tmp_path / "delivered.jsonl"),
    }


def delivered(tmp_path: Path) -> list[Feedback]:
    path = tmp_path / "delivered.jsonl"
    if not path.exists():
        return []
    return [Feedback.model_validate_json(x) for x in path.read_bytes().split(b"\n") if x]


def refused_lines(stderr: str) -> dict[int, str]:
    found: dict[int, str] = {}
    for text in stderr.splitlines():
        if text.startswith("line "):
            number, reason = text.removeprefix("line ").split(": ", 1)
            found[int(number)] = reason
    return found


def exporter_records(n: int) -> list[Feedback]:
    at = datetime(2026, 11, 20, tzinfo=timezone.utc).isoformat()
    return [
        Feedback.model_validate(
            {
                "id": str(UUID(int=i + 1)),
                "created_at": at,
                "modified_at": at,
                "trace_id": str(UUID(TRACE)),
                "run_id": str(UUID(int=int(RUN, 16))),
                "key": "k",
                "score": i,
                "comment": f"one{SEPARATORS[i % 3]}two",
            }
        )
        for i in range(n)
    ]


def test_import_refuses_each_bad_line_by_number_and_sends_the_others(tmp_path: Path) -> None:
    lines: list[bytes | str] = [
        good(0),  # 1
        good(1).encode().replace(b'"key": "k"', b'"key": "k\xff"'),  # 2
        b"\x00\x01\x02binary\x00",  # 3
        b"[" * 100_000 + b"]" * 100_000,  # 4: deeper than the parser's stack
        json.dumps({"key": "k", "extra": _nested(MAX_DEPTH + 5), "trace_id": TRACE}),  # 5
        b"{" + b" " * (MAX_LINE_BYTES + 1) + b"}",  # 6
        "{not json",  # 7
        good(2),  # 8
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    done = run("import", str(source), **to_jsonl(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "sent 2 of 8 record(s)" in done.stdout
    refused = refused_lines(done.stderr)
    assert sorted(refused) == [2, 3, 4, 5, 6, 7]
    assert refused[2].startswith("not UTF-8: byte 0xff at column ")
    assert refused[3] == "binary data: a NUL byte at column 1"
    assert refused[4] == f"too deep: JSON nested more than {MAX_DEPTH} levels"
    assert refused[5] == f"too deep: JSON nested more than {MAX_DEPTH} levels"
    assert refused[6] == f"too long: {MAX_LINE_BYTES + 3} bytes, at most {MAX_LINE_BYTES}"
    assert refused[7].startswith("not JSON: ")
    assert sorted(float(r.score or 0) for r in delivered(tmp_path)) == [0, 2]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_import_of_a_binary_file_refuses_every_line_and_raises_nothing(tmp_path: Path) -> None:
    source = tmp_path / "photo.jsonl"
    source.write_bytes(os.urandom(64 * 1024))
    done = run("import", str(source), **to_jsonl(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [x for x in source.read_bytes().split(b"\n") if x.strip()]
    assert len(refused_lines(done.stderr)) == len(lines)
    assert f"sent 0 of {len(lines)} record(s)" in done.stdout
    assert delivered(tmp_path) == []


def test_import_splits_only_at_line_feeds(tmp_path: Path) -> None:
    """Records the jsonl exporter wrote, with U+2028, U+2029, U+0085 in a comment."""
    source = tmp_path / "exported.jsonl"
    records = exporter_records(4)
    assert JsonlFeedbackExporter(source).export(records).name == "SUCCESS"
    assert any(s in source.read_text(encoding="utf-8") for s in SEPARATORS)
    done = run("import", str(source), **to_jsonl(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "sent 4 of 4 record(s)" in done.stdout
    assert sorted((r.id, r.comment) for r in delivered(tmp_path)) == sorted(
        (r.id, r.comment) for r in records
    )


def test_import_names_a_line_by_its_number_in_a_file_with_separators(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join([good(0, comment="a\u2028b"), good(1, comment="c\u0085d"), "nope", good(3)])
        + "\r\n",
        encoding="utf-8",
    )
    done = run("import", str(source), **to_jsonl(tmp_path))
    assert done.returncode == 1
    assert refused_lines(done.stderr) == {3: "not JSON: Expecting value at column 1"}
    assert sorted(r.comment or "" for r in delivered(tmp_path)) == ["", "a\u2028b", "c\u0085d"]


def test_import_csv_refuses_bad_rows_alone(tmp_path: Path) -> None:
    rows = [
        b"key,score,trace_id,run_id,comment",  # 1
        f"k,1,{TRACE},{RUN},fine".encode(),  # 2
        f"k,2,{TRACE},{RUN},".encode() + b"x" * 200_000,  # 3: a cell over csv's 131,072
        f"k,3,{TRACE},{RUN},caf".encode() + b"\xe9",  # 4: Latin-1, not UTF-8
        f"k,4,{TRACE},{RUN},nul".encode() + b"\x00",  # 5
        f'k,5,{TRACE},{RUN},"two'.encode(),  # 6: a quoted cell over two lines
        b'lines"',  # 7
        b",,,,",  # 8
        f"k,6,{TRACE},{RUN},{'y' * (MAX_LINE_BYTES + 1)}".encode(),  # 9
    ]
    source = tmp_path / "in.csv"
    source.write_bytes(b"\r\n".join(rows) + b"\r\n")
    done = run("import", str(source), **to_jsonl(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    refused = refused_lines(done.stderr)
    assert sorted(refused) == [3, 4, 5, 8, 9]
    assert refused[3].startswith("comment: ")  # the library's own limit, not csv's
    assert refused[4] == "not UTF-8: byte 0xe9 in column 5"
    assert refused[5] == "binary data: a NUL byte in column 5"
    assert refused[8] == "no cell has a value"
    assert refused[9].startswith("not CSV: field larger than field limit")
    assert "sent 2 of 7 record(s)" in done.stdout
    assert sorted((r.score, r.comment) for r in delivered(tmp_path)) == [
        (1, "fine"),
        (5, "two\r\nlines"),
    ]


def test_import_of_a_csv_with_an_unusable_header_counts_every_line(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"key,\xff\n" + f"k,{TRACE}\n".encode() * 3)
    done = run("import", str(source), **to_jsonl(tmp_path))
    assert done.returncode == 1
    refused = refused_lines(done.stderr)
    assert refused[1] == "header: not UTF-8: byte 0xff in column 2"
    assert set(refused) == {1, 2, 3, 4}


# --- summary --------------------------------------------------------------------------------


def test_summary_names_bad_lines_and_sums_up_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    assert JsonlFeedbackExporter(path).export(exporter_records(4)).name == "SUCCESS"
    with path.open("ab") as file:
        file.write(b"\xff\xfe broken\n")  # line 5
        file.write(b"[" * 100_000 + b"\n")  # line 6
        file.write(b"\x00" * 10 + b"\n")  # line 7
        file.write(b'{"key": "x"}\n')  # line 8
    done = run("summary", "--format", "json", str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{path}:5: not UTF-8: byte 0xff at column 1",
        f"{path}:6: too deep: JSON nested more than {MAX_DEPTH} levels",
        f"{path}:7: binary data: a NUL byte at column 1",
        f"{path}:8: id: Field required",
    ]
    [group] = json.loads(done.stdout)
    assert (group["key"], group["count"]) == ("k", 4)  # every separator stayed inside its line


def test_summary_counts_each_feedback_id_once_the_last_record_winning(tmp_path: Path) -> None:
    first, second = tmp_path / "monday.jsonl", tmp_path / "tuesday.jsonl"
    records = exporter_records(3)
    JsonlFeedbackExporter(first).export(records)
    # Delivered again (at least once), one of them updated: same ids, a new score.
    again = [records[0], records[1].model_copy(update={"score": 10}), records[2]]
    JsonlFeedbackExporter(second).export(again)
    done = run("summary", "--format", "json", str(first), str(second))
    assert done.returncode == 0, done.stderr
    [group] = json.loads(done.stdout)
    assert (group["count"], group["max"], group["min"]) == (3, 10.0, 0.0)
    assert "folded 3 duplicate record(s)" in done.stderr
    single = run("summary", "--format", "json", str(first))
    assert "folded" not in single.stderr


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_summary_csv_neutralises_cells_a_spreadsheet_would_run(tmp_path: Path, lead: str) -> None:
    at = datetime(2026, 11, 20, tzinfo=timezone.utc).isoformat()
    formula = f'{lead}HYPERLINK("http://x.invalid","y")'
    record = Feedback.model_validate(
        {
            "id": str(UUID(int=1)),
            "created_at": at,
            "modified_at": at,
            "key": formula,
            "score": -1,
            "value": "up",
            "feedback_source": {"type": formula},
        }
    )
    path = tmp_path / "f.jsonl"
    JsonlFeedbackExporter(path).export([record])
    done = run("summary", "--by", "source", "--format", "csv", str(path))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    shown = "'" + formula.replace("\r", "\n")  # run() reads stdout with universal newlines
    assert [(r["key"], r["source"], r["mean"]) for r in rows] == [
        (shown, shown, "-1.0")  # the number stays a number
    ]


def test_summary_html_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    JsonlFeedbackExporter(path).export(exporter_records(1))
    page = tmp_path / "no-such-folder" / "report.html"
    done = run("summary", "--html", str(page), str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{page}: cannot be written: No such file or directory" in done.stderr


@pytest.mark.parametrize("expires_in", ["1e20", "inf", "99999999999d"])
def test_token_expiry_too_large_is_a_usage_error(expires_in: str) -> None:
    done = run(
        "token", "create", "--trace-id", TRACE, "--expires-in", expires_in,
        OTEL_PYTHON_FEEDBACK_TOKEN_SECRET="0123456789abcdef0123456789abcdef",
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--expires-in" in done.stderr
    assert "too large" in done.stderr
