"""The first snippet a newcomer runs: it prints its feedback at once, with nothing listening."""

from __future__ import annotations

import os
import subprocess
import sys

from otel_feedback import Feedback

# The README's first snippet, as written there.
FIRST_SNIPPET = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import ConsoleFeedbackExporter, FeedbackSpanProcessor, record_feedback

provider = TracerProvider()
# To an OTLP receiver instead: FeedbackSpanProcessor(OTLPFeedbackExporter())
provider.add_span_processor(FeedbackSpanProcessor(ConsoleFeedbackExporter()))
trace.set_tracer_provider(provider)

tracer = trace.get_tracer(__name__)
with tracer.start_as_current_span("answer_question"):
    record_feedback("correctness", score=1, comment="matches the reference")
"""


def test_the_first_snippet_prints_its_record_and_exits_with_nothing_listening() -> None:
    # No OTEL_* variable: no endpoint, no collector; the exit hooks deliver the record.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_SNIPPET],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,  # exit 0
        env=env,
    )
    record = Feedback.model_validate_json(done.stdout)
    assert record.key == "correctness"
    assert record.score == 1
    assert record.comment == "matches the reference"
    assert record.trace_id is not None
    assert record.run_id is not None
    assert done.stderr == ""
