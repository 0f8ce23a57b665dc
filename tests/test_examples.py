from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from otel_feedback import Feedback
from otel_feedback._ids import evaluation_feedback_id

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


@dataclass(frozen=True)
class PrintedSpan:
    trace_id: int
    span_id: int
    name: str
    kind: str
    parent: str | None  # the name of the span printed above it, one level out


SPAN_LINE = re.compile(
    r"^(?P<indent> +)(?P<name>\S.*?) +(?P<kind>CHAIN|RETRIEVER|EMBEDDING|LLM|EVALUATOR|-) +\d+ ms"
    r"  span (?P<span_id>[0-9a-f]{16})$"
)


def printed_spans(stdout: str) -> dict[int, PrintedSpan]:
    """The span tree llm_pipeline.py prints, by span id."""
    spans: dict[int, PrintedSpan] = {}
    trace_id = 0
    path: list[str] = []  # the names from the root down to the line's span
    for line in stdout.splitlines():
        if line.startswith("trace "):
            trace_id = int(line.split()[1].rstrip(":"), 16)
        elif match := SPAN_LINE.match(line):
            depth = len(match["indent"]) // 2
            path = [*path[: depth - 1], match["name"]]
            span_id = int(match["span_id"], 16)
            parent = path[-2] if len(path) > 1 else None
            spans[span_id] = PrintedSpan(trace_id, span_id, match["name"], match["kind"], parent)
    return spans


def run_llm_pipeline(
    tmp_path: Path, *args: str, **environment: str
) -> tuple[dict[int, PrintedSpan], list[Feedback]]:
    # None of the caller's OTEL_* variables: the demo must choose its mode from these alone;
    # none of its OPENAI_* ones: the LLM judge asks the loopback stand-in, never a real service.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env.update(environment)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "llm_pipeline.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    assert "WARNING" not in done.stderr, done.stderr
    records_file = tmp_path / "feedback.jsonl"
    records = [Feedback.model_validate_json(line) for line in records_file.read_text().splitlines()]
    return printed_spans(done.stdout), records


def assert_llm_pipeline_feedback(spans: dict[int, PrintedSpan], records: list[Feedback]) -> None:
    roots = [s for s in spans.values() if s.name == "answer_question"]
    assert len(roots) == 4
    assert {s.kind for s in spans.values() if s.name == "retrieve"} == {"RETRIEVER"}
    assert {s.kind for s in spans.values() if s.name == "generate"} == {"LLM"}
    assert {s.parent for s in spans.values() if s.name == "embed_query"} == {"retrieve"}

    judged: dict[tuple[str, str], list[PrintedSpan]] = {}
    for record in records:
        assert record.run_id is not None
        assert record.trace_id is not None
        assert record.feedback_source is not None
        span = spans[record.run_id.int]
        # Every record names the run it judges, in its own trace, never a carrier span.
        assert record.trace_id.int == span.trace_id
        assert not span.name.startswith(("feedback ", "evaluate "))
        judged.setdefault((record.key, record.feedback_source.type), []).append(span)

    # During the run: checks in code, on the steps they check.
    assert [s.name for s in judged["retrieval_hit", "api"]] == ["retrieve"] * 4
    assert [s.name for s in judged["cites_sources", "api"]] == ["generate"] * 4
    # After the run: the judge on every answer, the online LLM judge on every LLM call, the
    # user on two, the reviewer on one.
    generates = [s for s in spans.values() if s.name == "generate"]
    assert sorted(s.span_id for s in judged["correctness", "model"]) == sorted(
        s.span_id for s in [*roots, *generates]
    )
    # Online, the sentiment of every question, on the app's entry point.
    assert sorted(s.span_id for s in judged["user_sentiment", "model"]) == sorted(
        s.span_id for s in roots
    )
    assert [s.name for s in judged["user_rating", "app"]] == ["answer_question"] * 2
    (reviewed,) = judged["correctness", "reviewer"]
    assert reviewed.name == "answer_question"
    assert set(judged) == {
        ("retrieval_hit", "api"),
        ("cites_sources", "api"),
        ("correctness", "model"),
        ("user_sentiment", "model"),
        ("user_rating", "app"),
        ("correctness", "reviewer"),
    }

    def by(source_type: str) -> list[Feedback]:
        return [r for r in records if r.feedback_source and r.feedback_source.type == source_type]

    root_ids = {s.span_id for s in roots}
    judge = [r for r in by("model") if r.key == "correctness" and r.run_id.int in root_ids]  # type: ignore[union-attr]
    assert all(r.comment for r in judge)
    assert sorted(r.score for r in judge if r.score is not None) == [0.0, 0.5, 1.0, 1.0]
    ratings = [r for r in records if r.key == "user_rating"]
    assert sorted((r.value, r.score) for r in ratings) == [("thumbs_down", 0), ("thumbs_up", 1)]
    assert {r.feedback_source.user_id for r in ratings if r.feedback_source} == {"customer-1017"}
    (correction,) = by("reviewer")
    assert correction.correction == {
        "answer": "Headphones carry a 2-year limited warranty [kb-103]."
    }
    # The reviewer corrects the answer the judge scored 0, and the user rated down.
    flagged = next(r for r in judge if r.score == 0)
    assert correction.run_id == flagged.run_id
    assert next(r for r in ratings if r.score == 0).run_id == flagged.run_id

    # Feedback given after the run rides a "feedback <key>" span under the run it judges.
    carriers = [s for s in spans.values() if s.name.startswith("feedback ")]
    assert sorted(s.name for s in carriers) == sorted(
        f"feedback {r.key}"
        for r in records
        if r.key in ("correctness", "user_rating") and r.run_id.int in root_ids  # type: ignore[union-attr]
    )
    assert {s.parent for s in carriers} == {"answer_question"}
    assert {s.kind for s in carriers} == {"EVALUATOR"}  # OpenInference's post-hoc form

    assert_online_evaluation(spans, records)


def assert_online_evaluation(spans: dict[int, PrintedSpan], records: list[Feedback]) -> None:
    """The online evaluators' spans and results: each under the span it judged."""
    evaluator_spans = {s.span_id: s for s in spans.values() if s.name.startswith("evaluate ")}
    assert sorted(s.name for s in evaluator_spans.values()) == sorted(
        ["evaluate llm_judge"] * 4 + ["evaluate sentiment"] * 4
    )
    assert {s.kind for s in evaluator_spans.values()} == {"EVALUATOR"}
    assert {s.parent for s in evaluator_spans.values() if s.name == "evaluate llm_judge"} == {
        "generate"
    }
    assert {s.parent for s in evaluator_spans.values() if s.name == "evaluate sentiment"} == {
        "answer_question"
    }
    # Their ids: derived from (evaluator, key, trace, span), as online evaluation makes them.
    online = [r for r in records if r.id == evaluated_id(r, spans)]
    assert len(online) == 8
    by_question: dict[str, dict[str, Feedback]] = {}
    for record in online:
        assert record.feedback_source is not None
        assert record.feedback_source.type == "model"
        assert record.error is None
        run_id = record.feedback_source.metadata["__run"]["run_id"]  # type: ignore[index]
        evaluator = evaluator_spans[UUID(run_id).int]
        judged = spans[record.run_id.int]  # type: ignore[union-attr]
        # source_run_id: the evaluator span, under the judged span, in its trace.
        assert evaluator.trace_id == judged.trace_id
        assert evaluator.parent == judged.name
        by_question.setdefault(f"{judged.trace_id:032x}", {})[record.key] = record
    assert len(by_question) == 4
    verdicts = sorted(
        (r["user_sentiment"].value, r["correctness"].score) for r in by_question.values()
    )
    # The stand-in judge scores the wrong warranty answer 0: it contradicts its document.
    assert [score for _, score in verdicts].count(0) == 2
    assert {label for label, _ in verdicts} <= {"positive", "neutral", "negative"}


def evaluated_id(record: Feedback, spans: dict[int, PrintedSpan]) -> Any:
    """The id online evaluation gives ``record``, were it an evaluator's; else None."""
    if record.run_id is None or record.trace_id is None or record.run_id.int not in spans:
        return None
    evaluator = {"correctness": "llm_judge", "user_sentiment": "sentiment"}.get(record.key)
    if evaluator is None:
        return None
    return evaluation_feedback_id(evaluator, record.key, record.trace_id.int, record.run_id.int)


def test_llm_pipeline_without_a_server_prints_its_traces_and_writes_the_records(
    tmp_path: Path,
) -> None:
    spans, records = run_llm_pipeline(tmp_path, str(tmp_path / "feedback.jsonl"))
    assert len(records) == 23
    assert_llm_pipeline_feedback(spans, records)


def test_llm_pipeline_sends_feedback_where_the_environment_says(tmp_path: Path) -> None:
    spans, records = run_llm_pipeline(
        tmp_path,
        OTEL_TRACES_EXPORTER="none",
        OTEL_PYTHON_FEEDBACK_EXPORTER="jsonl",
        OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(tmp_path / "feedback.jsonl"),
    )
    assert len(records) == 23
    assert_llm_pipeline_feedback(spans, records)


INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
KEY_LINE = re.compile(r'^  "key": "(?P<key>[^"]+)",$', re.MULTILINE)


def run_example(name: str, *, instrumented: bool) -> subprocess.CompletedProcess[str]:
    """``examples/<name>`` with spans printed nowhere and feedback on the console."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    env.update(
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_FEEDBACK_EXPORTER="console",
    )
    command = [str(INSTRUMENT)] if instrumented else []
    return subprocess.run(
        [*command, sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,  # exit 0
        env=env,
    )


def printed_keys(stdout: str) -> list[str]:
    """The keys of the records ConsoleFeedbackExporter printed, sorted."""
    return sorted(match["key"] for match in KEY_LINE.finditer(stdout))


EXPECTED_KEYS = {
    "quickstart.py": ["correctness", "user_feedback"],
    "zero_code_app.py": ["correctness", "retrieval_hit", "user_rating"],
    "llm_pipeline.py": sorted(
        ["retrieval_hit"] * 4
        + ["cites_sources"] * 4
        + ["correctness"] * (5 + 4)  # the judge, the reviewer, the online LLM judge
        + ["user_rating"] * 2
        + ["user_sentiment"] * 4
    ),
}


@pytest.mark.parametrize("instrumented", [False, True], ids=["plain", "instrumented"])
@pytest.mark.parametrize("name", sorted(EXPECTED_KEYS))
def test_every_example_runs_with_and_without_opentelemetry_instrument(
    name: str, instrumented: bool
) -> None:
    done = run_example(name, instrumented=instrumented)
    assert "Traceback" not in done.stderr, done.stderr
    if name == "zero_code_app.py" and not instrumented:
        # No tracing at all: the app runs as it would in its unit tests, feedback unrecorded.
        assert "Refunds are possible" in done.stdout
        assert printed_keys(done.stdout) == []
        assert "not recorded: no span current" in done.stderr
        return
    assert printed_keys(done.stdout) == EXPECTED_KEYS[name]


def test_the_web_example_is_run_by_the_web_tests() -> None:
    pytest.skip(
        "examples/web_app.py is a server: tests/test_web_browser.py serves it under uvicorn "
        "and drives its page in a browser; run alone it stays up until stopped"
    )
