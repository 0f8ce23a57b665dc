from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from otel_feedback import (
    ConsoleFeedbackExporter,
    Feedback,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    JsonlFeedbackExporter,
    record_feedback,
)
from tests.conftest import Pipeline


def _records(pipeline: Pipeline, count: int) -> list[Feedback]:
    made = []
    for i in range(count):
        with pipeline.tracer.start_as_current_span(f"run {i}"):
            record = record_feedback("k", score=i, value={"i": i}, comment=f"c{i}")
            assert record is not None
            made.append(record.to_feedback())
    pipeline.flush()
    return made


def test_jsonl_appends_one_seed_record_per_line(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"already": "here"}\n')
    exporter = JsonlFeedbackExporter(path)
    assert exporter.path == str(path)
    made = _records(pipeline, 3)
    assert exporter.export(made[:2]) is FeedbackExportResult.SUCCESS
    assert exporter.export(made[2:]) is FeedbackExportResult.SUCCESS
    lines = path.read_text().splitlines()
    assert lines[0] == '{"already": "here"}'
    assert [Feedback.model_validate_json(line) for line in lines[1:]] == made
    assert all(json.loads(line)["key"] == "k" for line in lines[1:])


def test_jsonl_through_the_processor(tmp_path: Path, pipeline: Pipeline) -> None:
    path = tmp_path / "fb.jsonl"
    processor = FeedbackSpanProcessor(JsonlFeedbackExporter(path))
    pipeline.provider.add_span_processor(processor)
    made = _records(pipeline, 2)
    processor.force_flush()
    assert [Feedback.model_validate_json(x) for x in path.read_text().splitlines()] == made


def test_jsonl_into_a_missing_directory_fails_in_the_background_only(
    tmp_path: Path, pipeline: Pipeline
) -> None:
    processor = FeedbackSpanProcessor(JsonlFeedbackExporter(tmp_path / "no" / "such.jsonl"))
    pipeline.provider.add_span_processor(processor)
    _records(pipeline, 2)  # must not raise
    processor.force_flush()
    assert processor.dropped_records == 2


def test_jsonl_needs_a_path() -> None:
    with pytest.raises(ValueError, match="path"):
        JsonlFeedbackExporter("")


def test_console_writes_readable_json(pipeline: Pipeline) -> None:
    out = io.StringIO()
    made = _records(pipeline, 2)
    assert ConsoleFeedbackExporter(out=out).export(made) is FeedbackExportResult.SUCCESS
    text = out.getvalue()
    assert "\n  " in text  # indented for people
    decoder, position, parsed = json.JSONDecoder(), 0, []
    while position < len(text.rstrip()):
        obj, end = decoder.raw_decode(text, position)
        parsed.append(Feedback.model_validate(obj))
        position = end + 1
    assert parsed == made


def test_console_defaults_to_stdout(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    made = _records(pipeline, 1)
    ConsoleFeedbackExporter().export(made)
    assert Feedback.model_validate_json(capsys.readouterr().out) == made[0]


def test_in_memory_keeps_clears_and_stops(pipeline: Pipeline) -> None:
    exporter = InMemoryFeedbackExporter()
    made = _records(pipeline, 2)
    exporter.export(made)
    assert exporter.get_finished_feedback() == tuple(made)
    exporter.clear()
    assert exporter.get_finished_feedback() == ()
    exporter.shutdown()
    assert exporter.export(made) is FeedbackExportResult.FAILURE
