"""``otel-feedback evaluate`` as users run it: a real process over a Collector-style file.

The files are OTLP/JSON lines as the OpenTelemetry Collector's file exporter writes them, made
from real SDK spans (``otlp_json_of``); the results go to a JSONL file; the evaluators are a
module of the user's, named by ``module:function`` on the command line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_feedback import (
    Feedback,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    OnlineEvaluationProcessor,
)
from otel_feedback._ids import evaluation_feedback_id, trace_sampled, uuid_from_span_id
from tests.otlp_receiver import OTLPReceiver
from tests.test_judged_run import otlp_json_of

COMMAND = Path(sys.executable).parent / "otel-feedback"

# The user's evaluators, as a module of their own (written to a temporary directory that is
# put on PYTHONPATH). The same source is loaded here to judge the same spans online.
JUDGES = textwrap.dedent(
    '''
    """A support team's evaluators."""

    import re


    def correctness(run):
        """1 when the answer cites a knowledge-base article, else 0."""
        if run.output_text is None:
            return None
        cited = re.findall(r"kb-[0-9]+", run.output_text)
        return {
            "key": "correctness",
            "score": 1 if cited else 0,
            "comment": f"cites {', '.join(cited) or 'nothing'}",
        }


    def length(run):
        """The answer's length in words, as a bare number (keyed by the function's name)."""
        return len((run.output_text or "").split())


    def explodes(run):
        raise RuntimeError("the judge's model is down")
    '''
)

ANSWERS = [
    ("Where is my parcel?", "It ships tomorrow [kb-7]."),
    ("Can I get a refund?", "Yes, within 30 days [kb-101]."),
    ("Do you price-match?", "I could not find that."),
]


@pytest.fixture
def judges(tmp_path: Path) -> Any:
    """The evaluators' module: written for the command, and loaded here."""
    folder = tmp_path / "judging"
    folder.mkdir()
    (folder / "judges.py").write_text(JUDGES)
    spec = importlib.util.spec_from_file_location("judges", folder / "judges.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__dict__["folder"] = folder  # where the command finds it
    return module


def run(
    *args: str, judges: Any, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The installed console script, with only these OTEL_* variables and the judges importable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    clean.update(env)
    clean["PYTHONPATH"] = str(judges.folder)
    clean["COLUMNS"] = "200"  # rich wraps at the terminal width; keep lines whole
    clean.setdefault("OTEL_TRACES_EXPORTER", "none")
    return subprocess.run(
        [str(COMMAND), "evaluate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        check=False,
    )


def to_jsonl(path: Path) -> dict[str, str]:
    return {"OTEL_PYTHON_FEEDBACK_EXPORTER": "jsonl", "OTEL_PYTHON_FEEDBACK_JSONL_PATH": str(path)}


def records_in(path: Path) -> list[Feedback]:
    if not path.exists():
        return []
    return [Feedback.model_validate_json(line) for line in path.read_text().splitlines()]


class App:
    """An app's provider: spans kept in memory, and online evaluation when asked for."""

    def __init__(self, evaluation: OnlineEvaluationProcessor | None = None) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
        self.spans = InMemorySpanExporter()
        self.feedback = InMemoryFeedbackExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.provider.add_span_processor(FeedbackSpanProcessor(self.feedback))
        if evaluation is not None:
            self.provider.add_span_processor(evaluation)
        self.tracer = self.provider.get_tracer("support-bot")

    def answer(self, question: str, answer: str) -> None:
        """One trace: a CHAIN span with an LLM span under it (OpenInference attributes)."""
        with (
            self.tracer.start_as_current_span(
                "answer_question",
                attributes={
                    "openinference.span.kind": "CHAIN",
                    "input.value": question,
                    "output.value": answer,
                },
            ),
            self.tracer.start_as_current_span(
                "generate",
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": question,
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": answer,
                },
            ),
        ):
            pass

    def app_spans(self) -> list[ReadableSpan]:
        """The app's own spans, not the evaluators'."""
        return [s for s in self.spans.get_finished_spans() if not s.name.startswith("evaluate ")]

    def online_records(self) -> list[Feedback]:
        assert self.provider.force_flush(30_000)
        return list(self.feedback.get_finished_feedback())

    def collector_file(self, path: Path, *, per_line: int = 1) -> Path:
        """The app's spans as a Collector's file exporter writes them: a document a line."""
        spans = self.app_spans()
        lines = [
            json.dumps(otlp_json_of(*spans[i : i + per_line]))
            for i in range(0, len(spans), per_line)
        ]
        path.write_text("".join(line + "\n" for line in lines))
        return path


@pytest.fixture
def app() -> Iterator[App]:
    made = App()
    yield made
    made.provider.shutdown()


def summary_rows(stdout: str) -> dict[str, tuple[str, ...]]:
    """The summary table's rows: key -> (results, mean score, errors)."""
    rows: dict[str, tuple[str, ...]] = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 4 and cells[0] != "key":
            rows[cells[0]] = (cells[1], cells[2], cells[3])
    return rows


def span_ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


# --- the ids and results online evaluation gives ------------------------------------------


def test_the_results_are_those_online_evaluation_gives_the_same_spans(
    judges: Any, tmp_path: Path
) -> None:
    online = App(OnlineEvaluationProcessor([judges.correctness, judges.length]))
    for question, answer in ANSWERS:
        online.answer(question, answer)
    judged_online = online.online_records()
    online.provider.shutdown()
    assert len(judged_online) == 2 * 2 * len(ANSWERS)  # two evaluators, two spans a trace

    out = tmp_path / "results.jsonl"
    done = run(
        "--evaluator", "judges:correctness", "--evaluator", "judges:length",
        str(online.collector_file(tmp_path / "spans.json")),
        judges=judges, **to_jsonl(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    offline = records_in(out)

    def essence(record: Feedback) -> tuple[Any, ...]:
        source = record.feedback_source
        assert source is not None
        return (
            record.id, record.key, record.score, record.comment, record.trace_id,
            record.run_id, source.type, record.error,
        )  # fmt: skip

    # Same ids (judging again updates), same results, on the same runs.
    assert sorted(map(essence, offline), key=str) == sorted(map(essence, judged_online), key=str)
    for record in offline:
        assert record.trace_id is not None
        assert record.run_id is not None
        evaluator = "length" if record.key == "length" else "correctness"
        assert record.id == evaluation_feedback_id(
            evaluator, record.key, record.trace_id.int, record.run_id.int
        )
        # source_run_id: the evaluator span of this pass, not the online one.
        metadata = record.feedback_source.metadata if record.feedback_source else None
        assert metadata is not None
        assert UUID(metadata["__run"]["run_id"]) not in {
            r.feedback_source.metadata["__run"]["run_id"]  # type: ignore[union-attr,index]
            for r in judged_online
        }

    # The summary, per key: results, mean score, errors.
    rows = summary_rows(done.stdout)
    assert rows["correctness"] == ("6", f"{4 / 6:.3f}", "0")
    words = [len(a.split()) for _, a in ANSWERS] * 2
    assert rows["length"] == ("6", f"{sum(words) / 6:.3f}", "0")
    assert "judged 6 of 6 span(s); 12 result(s), 12 of 12 delivered" in done.stdout


def test_sampling_judges_whole_traces_as_online_evaluation_does(
    judges: Any, tmp_path: Path
) -> None:
    online = App(OnlineEvaluationProcessor([judges.correctness], sample_rate=0.5))
    for i in range(40):
        online.answer(f"Question {i}?", f"Answer {i} [kb-{i}].")
    judged_online = online.online_records()
    online.provider.shutdown()
    # Several spans of a trace on a line, and the traces cut across lines, as a Collector
    # batches them.
    spans_file = online.collector_file(tmp_path / "spans.json", per_line=3)

    out = tmp_path / "results.jsonl"
    done = run(
        "--evaluator", "judges:correctness", "--sample-rate", "0.5", str(spans_file),
        judges=judges, **to_jsonl(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    offline = records_in(out)

    def judged(records: list[Feedback]) -> set[tuple[int, int]]:
        return {(r.trace_id.int, r.run_id.int) for r in records}  # type: ignore[union-attr]

    every = [span_ids(s) for s in online.app_spans()]
    chosen = {(t, s) for t, s in every if trace_sampled(t, 0.5)}
    assert judged(offline) == judged(judged_online) == chosen
    assert 0 < len({t for t, _ in chosen}) < 40
    # Whole traces: both spans of a chosen trace, none of another.
    assert {t for t, _ in chosen} == {t for t, _ in judged(offline)}
    assert len(chosen) == 2 * len({t for t, _ in chosen})
    assert f"judged {len(chosen)} of 80 span(s)" in done.stdout


# --- what cannot be read, and what fails --------------------------------------------------


def test_bad_lines_and_bad_spans_are_named_by_line_and_the_others_judged(
    judges: Any, app: App, tmp_path: Path
) -> None:
    for question, answer in ANSWERS:
        app.answer(question, answer)
    good = [json.dumps(otlp_json_of(s)) for s in app.app_spans()]
    bad_span = otlp_json_of(*app.app_spans()[:2])
    spans = bad_span["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["spanId"] = "not-hex"
    lines = [
        good[0],
        "{this is not json",
        "[1, 2]",
        json.dumps(bad_span),  # one bad span, one good one
        good[2],
        json.dumps({"resourceSpans": "no list"}),
    ]
    spans_file = tmp_path / "spans.json"
    spans_file.write_text("\n".join(lines) + "\n")

    out = tmp_path / "results.jsonl"
    done = run("-e", "judges:correctness", str(spans_file), judges=judges, **to_jsonl(out))
    assert done.returncode == 1, done.stderr
    named = [line for line in done.stderr.splitlines() if "line" in line]
    assert any(f"{spans_file} line 2:" in line for line in named), done.stderr
    assert any(f"{spans_file} line 3:" in line for line in named), done.stderr
    assert any(
        f"{spans_file} line 4:" in line and "spanId" in line and "not-hex" in line for line in named
    ), done.stderr
    assert any(f"{spans_file} line 6:" in line and "resourceSpans" in line for line in named)
    assert not any(f"line {n}:" in done.stderr for n in (1, 5))
    # The readable spans are judged all the same: lines 1 and 5, and line 4's good span.
    judged = {r.run_id.int for r in records_in(out)}  # type: ignore[union-attr]
    all_spans = app.app_spans()
    expected = {span_ids(s)[1] for s in (all_spans[0], all_spans[1], all_spans[2])}
    assert judged == expected
    assert "judged 3 of 3 span(s)" in done.stdout


def test_spans_from_stdin(judges: Any, app: App, tmp_path: Path) -> None:
    for question, answer in ANSWERS:
        app.answer(question, answer)
    text = app.collector_file(tmp_path / "spans.json").read_text()
    out = tmp_path / "results.jsonl"
    done = run("-e", "judges:correctness", "-", judges=judges, stdin=text, **to_jsonl(out))
    assert done.returncode == 0, done.stderr
    assert len(records_in(out)) == 6
    assert summary_rows(done.stdout)["correctness"][0] == "6"


@pytest.mark.parametrize(
    ("reference", "named"),
    [
        ("no_such_module:judge", "no_such_module"),
        ("judges:no_such_function", "no_such_function"),
        ("judges", "judges"),
    ],
)
def test_an_evaluator_that_cannot_be_loaded_exits_2_naming_it(
    judges: Any, app: App, tmp_path: Path, reference: str, named: str
) -> None:
    app.answer(*ANSWERS[0])
    out = tmp_path / "results.jsonl"
    done = run(
        "--evaluator", reference, str(app.collector_file(tmp_path / "spans.json")),
        judges=judges, **to_jsonl(out),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert records_in(out) == []


def test_an_evaluator_that_cannot_be_loaded_is_named_with_its_option(
    judges: Any, app: App, tmp_path: Path
) -> None:
    # click's usage error names the option when the BadParameter says which it is:
    # "Invalid value for '--evaluator': 'judges' has no 'no_such_function'".
    app.answer(*ANSWERS[0])
    done = run(
        "-e", "judges:no_such_function", str(app.collector_file(tmp_path / "spans.json")),
        judges=judges, **to_jsonl(tmp_path / "results.jsonl"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--evaluator'" in done.stderr, done.stderr


def test_no_evaluator_at_all_exits_2(judges: Any, app: App, tmp_path: Path) -> None:
    app.answer(*ANSWERS[0])
    done = run(
        str(app.collector_file(tmp_path / "spans.json")),
        judges=judges,
        **to_jsonl(tmp_path / "results.jsonl"),
    )
    assert done.returncode == 2
    assert "OTEL_PYTHON_FEEDBACK_EVALUATORS" in done.stderr


def test_evaluators_named_by_the_environment(judges: Any, app: App, tmp_path: Path) -> None:
    app.answer(*ANSWERS[0])
    out = tmp_path / "results.jsonl"
    done = run(
        str(app.collector_file(tmp_path / "spans.json")),
        judges=judges,
        OTEL_PYTHON_FEEDBACK_EVALUATORS="judges:correctness,judges:length",
        **to_jsonl(out),
    )
    assert done.returncode == 0, done.stderr
    assert sorted(r.key for r in records_in(out)) == ["correctness"] * 2 + ["length"] * 2


def test_an_evaluator_that_raises_gives_an_error_record_and_exit_1(
    judges: Any, app: App, tmp_path: Path
) -> None:
    app.answer(*ANSWERS[0])
    out = tmp_path / "results.jsonl"
    done = run(
        "-e", "judges:explodes", "-e", "judges:correctness",
        str(app.collector_file(tmp_path / "spans.json")),
        judges=judges, **to_jsonl(out),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    records = records_in(out)
    errors = [r for r in records if r.error]
    assert len(errors) == 2  # one a judged span
    for record in errors:
        assert record.key == "explodes"
        assert record.comment == "explodes raised RuntimeError: the judge's model is down"
        assert record.trace_id is not None
        assert record.run_id is not None
        assert record.id == evaluation_feedback_id(
            "explodes", "explodes", record.trace_id.int, record.run_id.int
        )
    # The other evaluator's results are recorded all the same.
    assert sorted(r.key for r in records if not r.error) == ["correctness"] * 2
    rows = summary_rows(done.stdout)
    assert rows["explodes"] == ("2", "-", "2")
    assert rows["correctness"] == ("2", "1.000", "0")
    assert "2 evaluation(s) failed" in done.stdout


# --- the evaluator spans ------------------------------------------------------------------


def test_evaluator_spans_go_to_otlp_traces_under_the_judged_spans(
    judges: Any, app: App, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    for question, answer in ANSWERS:
        app.answer(question, answer)
    out = tmp_path / "results.jsonl"
    done = run(
        "-e", "judges:correctness", str(app.collector_file(tmp_path / "spans.json")),
        judges=judges,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.http_endpoint}/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_SERVICE_NAME="offline-judge",
        **to_jsonl(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    received = receiver.spans()  # no waiting: the command flushed its spans before it exited
    judged = {span_ids(s) for s in app.app_spans()}
    assert len(received) == len(judged) == 6
    records = {r.run_id.int: r for r in records_in(out)}  # type: ignore[union-attr]
    for span in received:
        assert span.span.name == "evaluate correctness"
        assert span.attributes["openinference.span.kind"] == "EVALUATOR"
        assert span.resource["service.name"] == "offline-judge"
        # A child of the judged span, in its trace, and linked to it.
        assert (span.trace_id, span.parent_span_id) in judged
        (link,) = span.span.links
        assert (int.from_bytes(link.trace_id, "big"), int.from_bytes(link.span_id, "big")) == (
            span.trace_id,
            span.parent_span_id,
        )
        # The result rides the span as its event, and the record names the span as its source.
        (event,) = [e for e in span.span.events if e.name == "gen_ai.evaluation.result"]
        record = records[span.parent_span_id]
        assert record.feedback_source is not None
        assert record.feedback_source.metadata == {
            "evaluator": "correctness",
            "__run": {"run_id": str(uuid_from_span_id(span.span_id))},
        }
        assert event.name == "gen_ai.evaluation.result"


STUCK_JUDGES = textwrap.dedent(
    """
    import asyncio
    import threading
    import time

    never = threading.Event()


    def hangs(run):
        never.wait()


    async def ignores_cancellation(run):
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass


    async def blocks_its_loop(run):
        time.sleep(3600)
    """
)


@pytest.mark.parametrize(
    ("evaluator", "timed_out"),
    [("hangs", 2), ("ignores_cancellation", 2), ("blocks_its_loop", 0)],
)
def test_evaluators_that_never_end_do_not_hang_the_command(
    judges: Any, app: App, tmp_path: Path, evaluator: str, timed_out: int
) -> None:
    (judges.folder / "stuck.py").write_text(STUCK_JUDGES)
    for question, answer in ANSWERS * 4:
        app.answer(question, answer)
    spans = app.collector_file(tmp_path / "spans.jsonl")
    out = tmp_path / "feedback.jsonl"
    done = run(
        "-e",
        f"stuck:{evaluator}",
        "--max-workers",
        "2",
        "--evaluation-timeout",
        "0.5",
        str(spans),
        judges=judges,
        **to_jsonl(out),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    # The evaluations past their timeout are recorded as such; with every worker held by
    # one, the others are given up, counted, and the command ends.
    errors = [r for r in records_in(out) if r.error]
    assert len(errors) == timed_out
    assert all(r.comment == f"{evaluator} timed out after 0.5 s" for r in errors)
    assert "the evaluators judged nothing for 6 s, and judging stopped" in done.stderr
    # Every span read is judged, or named as not judged with its reason.
    not_judged = sum(
        int(n) for n in re.findall(r"^(\d+) span\(s\) not judged: ", done.stderr, re.M)
    )
    judged = int(re.search(r"judged (\d+) of 24 span\(s\)", done.stdout)[1])  # type: ignore[index]
    assert judged + not_judged == 24
    # Two workers: two evaluations started (a loop blocked in its first may have started one).
    assert judged == 2 if evaluator != "blocks_its_loop" else judged in {1, 2}


@pytest.mark.parametrize("option", ["--sample-rate", "--evaluation-timeout", "--timeout"])
@pytest.mark.parametrize("number", ["nan", "inf"])
def test_numbers_that_are_not_finite_are_refused(
    judges: Any, app: App, tmp_path: Path, option: str, number: str
) -> None:
    app.answer(*ANSWERS[0])
    spans = app.collector_file(tmp_path / "spans.jsonl")
    done = run("-e", "judges:correctness", option, number, str(spans), judges=judges)
    assert done.returncode == 2
    assert f"Invalid value for '{option}': " in done.stderr
    if number == "nan":  # inf is out of each option's range first
        assert f"'{number}' is not a finite number." in done.stderr


def test_evaluator_spans_in_stored_traces_are_not_judged(judges: Any, tmp_path: Path) -> None:
    # An app judged online; its spans and its evaluator spans, stored together, as they are
    # when the evaluator spans go where the spans go.
    app = App()
    app.provider.add_span_processor(
        OnlineEvaluationProcessor([judges.correctness], tracer_provider=app.provider)
    )
    try:
        for question, answer in ANSWERS:
            app.answer(question, answer)
        online = app.online_records()
        stored = app.spans.get_finished_spans()
        assert any(s.name == "evaluate correctness" for s in stored)
        path = tmp_path / "spans.jsonl"
        path.write_text(json.dumps(otlp_json_of(*stored)) + "\n")
    finally:
        app.provider.shutdown()
    out = tmp_path / "feedback.jsonl"
    done = run("-e", "judges:correctness", str(path), judges=judges, **to_jsonl(out))
    assert done.returncode == 0, done.stderr
    # Both spans of each of the three traces were judged online: six evaluator spans.
    assert "6 span(s) of evaluators and their judges left out" in done.stdout
    assert sorted(r.id for r in records_in(out)) == sorted(r.id for r in online)


def test_an_evaluator_module_that_exits_at_import_is_named(
    judges: Any, app: App, tmp_path: Path
) -> None:
    (judges.folder / "quits.py").write_text("raise SystemExit(5)\n")
    app.answer(*ANSWERS[0])
    spans = app.collector_file(tmp_path / "spans.jsonl")
    done = run("-e", "quits:judge", str(spans), judges=judges)
    assert done.returncode == 2
    assert "Invalid value for '--evaluator': cannot import 'quits' (SystemExit: 5)" in done.stderr
