"""The processor's options: one table, which the docs and the docstring are held to."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter
from otel_feedback._options import (
    PROCESSOR_OPTIONS,
    ProcessorOptions,
    markdown_rows,
    processor_options,
)

# The environment variables table of the documentation site.
CONFIGURATION = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_the_readme_table_is_the_options_table() -> None:
    text = CONFIGURATION.read_text()
    for row in markdown_rows():
        assert row in text
    variables = {o.variable for o in PROCESSOR_OPTIONS}
    rows = [line for line in text.splitlines() if line.startswith("| `OTEL_PYTHON_FEEDBACK_")]
    assert len([r for r in rows if r.split("`")[1] in variables]) == len(variables)


def test_the_docstring_gives_each_options_default() -> None:
    doc = FeedbackSpanProcessor.__doc__ or ""
    for option in PROCESSOR_OPTIONS:
        entry = re.search(rf"\n\s+{option.name}: (.*?)(?=\n\s+\w+: |\n\n)", doc, re.S)
        assert entry is not None, option.name
        assert f"default {option.default}" in " ".join(entry.group(1).split()), option.name


def test_the_defaults_are_the_tables() -> None:
    assert processor_options() == ProcessorOptions()
    assert [getattr(ProcessorOptions(), o.name) for o in PROCESSOR_OPTIONS] == [
        o.default for o in PROCESSOR_OPTIONS
    ]


def test_a_standard_batch_size_larger_than_the_queue_is_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "10")
    monkeypatch.setenv("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "50")
    options = processor_options()
    assert (options.max_queue_size, options.max_export_batch_size) == (10, 10)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE='50' is not at most the queue")


@pytest.mark.parametrize("value", [0, -1, float("nan"), True, "5"])
def test_a_bad_argument_is_named(value: object) -> None:
    with pytest.raises(ValueError, match=r"^retry_for_millis: must be positive, got "):
        FeedbackSpanProcessor(InMemoryFeedbackExporter(), retry_for_millis=value)  # type: ignore[arg-type]
