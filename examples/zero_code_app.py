"""An application with no otel_feedback or OpenTelemetry SDK setup code at all.

Run it under opentelemetry-instrument; the environment chooses where spans and feedback go:

    OTEL_SERVICE_NAME=support-bot \\
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
    OTEL_PYTHON_FEEDBACK_EXPORTER=console \\
    opentelemetry-instrument python examples/zero_code_app.py
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanContext

from otel_feedback import record_feedback

tracer = trace.get_tracer("support-bot")
KNOWLEDGE = ["Refunds are possible within 30 days.", "Shipping takes 3 days."]


def retrieve(question: str) -> list[str]:
    with tracer.start_as_current_span("retrieve"):
        documents = [
            doc for doc in KNOWLEDGE if any(w in doc.lower() for w in question.lower().split())
        ]
        # A programmatic check of the step: feedback on the child run.
        record_feedback("retrieval_hit", score=bool(documents), feedback_source_type="api")
        return documents


def answer(question: str) -> tuple[str, SpanContext]:
    with tracer.start_as_current_span("answer") as span:
        documents = retrieve(question) or ["Sorry, I do not know."]
        reply = f"{documents[0]} (asked: {question})"
        # An LLM judge scores the answer while the run is open.
        record_feedback(
            "correctness", score=0.9, comment="cites the policy", feedback_source_type="model"
        )
        return reply, span.get_span_context()


if __name__ == "__main__":
    reply, run = answer("Can I get refunds?")
    print(reply)
    # Later the user rates the answer. The run has ended: the feedback rides a short
    # "feedback user_rating" span under it.
    record_feedback("user_rating", score=1, value="thumbs_up", feedback_source_type="app", span=run)
