"""Feedback on an OpenTelemetry trace, printed as LangSmith-format records. No server needed.

The trace mirrors LangSmith's create_feedback example: a root run "foobar" with two child
steps; feedback goes on the "foo" child (an evaluator's correctness score) and on the root
(a user's thumbs-up).

    python examples/quickstart.py            # records as JSON on stdout
    python examples/quickstart.py out.jsonl  # ... and appended to out.jsonl
"""

from __future__ import annotations

import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    ConsoleFeedbackExporter,
    FeedbackExporter,
    FeedbackSpanProcessor,
    JsonlFeedbackExporter,
    record_feedback,
)

tracer = trace.get_tracer("quickstart")


def foo(x: int) -> dict[str, int]:
    with tracer.start_as_current_span("foo"):
        y = x * 2
        # An evaluator checks this step right away: feedback on the child run.
        record_feedback(
            "correctness",
            score=0,
            comment="expected y = 3 for x = 1",
            correction={"y": 3},
            feedback_source_type="model",
        )
        return {"y": y}


def bar(y: int) -> dict[str, int]:
    with tracer.start_as_current_span("bar"):
        return {"z": y - 1}


def main() -> None:
    exporters: list[FeedbackExporter] = [ConsoleFeedbackExporter()]
    if len(sys.argv) > 1:
        exporters.append(JsonlFeedbackExporter(sys.argv[1]))
    provider = TracerProvider(resource=Resource.create({"service.name": "quickstart"}))
    provider.add_span_processor(FeedbackSpanProcessor(exporters))
    trace.set_tracer_provider(provider)

    with tracer.start_as_current_span("foobar") as root:
        result = bar(**foo(x=1))
        # The user liked the answer: feedback on the root run (the whole trace).
        record_feedback("user_feedback", score=1, value="thumbs_up", feedback_source_type="app")

    provider.shutdown()  # flushes the feedback
    ids = root.get_span_context()
    print(
        f"# result {result}; trace_id {ids.trace_id:032x}, root span {ids.span_id:016x}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
