from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from uuid import UUID

from otel_feedback import Feedback

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_quickstart_prints_and_writes_the_records(tmp_path: Path) -> None:
    out = tmp_path / "feedback.jsonl"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    written = [Feedback.model_validate_json(line) for line in out.read_text().splitlines()]
    printed = []
    decoder, text, position = json.JSONDecoder(), done.stdout.strip(), 0
    while position < len(text):
        obj, position = decoder.raw_decode(text, position)
        printed.append(Feedback.model_validate(obj))
        position += 1
    assert printed == written
    by_key = {r.key: r for r in written}
    assert set(by_key) == {"correctness", "user_feedback"}
    # stderr names the trace and the root span: the root's feedback points at them.
    trace_hex, root_hex = done.stderr.split("trace_id ")[1].split(", root span ")
    root = by_key["user_feedback"]
    child = by_key["correctness"]
    assert root.trace_id == child.trace_id == UUID(int=int(trace_hex, 16))
    assert root.run_id == UUID(int=int(root_hex.strip(), 16))
    assert child.run_id != root.run_id
    assert child.score == 0
    assert child.correction == {"y": 3}
    assert root.score == 1
    assert root.value == "thumbs_up"
