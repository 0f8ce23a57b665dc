"""User and evaluator feedback as a first-class OpenTelemetry signal.

Record feedback inside traced code; it travels as a ``gen_ai.evaluation.result`` span event
and, through :class:`FeedbackSpanProcessor`, as LangSmith-format feedback records to the
exporters you choose (OTLP logs, JSONL, console, memory, and the native stores of Phoenix,
LangSmith, MLflow and Langfuse). ``configure()`` wires it from the
standard OpenTelemetry environment variables, and under ``opentelemetry-instrument`` it needs
no code at all::

    from opentelemetry import trace
    from otel_feedback import record_feedback

    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span("answer_question"):
        ...
        record_feedback("correctness", score=1, comment="matches the reference")
"""

from otel_feedback._configure import configure
from otel_feedback._errors import FeedbackTokenError, InvalidFeedbackError
from otel_feedback._export.base import FeedbackExporter, FeedbackExportResult, PartialFeedbackExport
from otel_feedback._export.console import ConsoleFeedbackExporter
from otel_feedback._export.engine import FeedbackExportStats
from otel_feedback._export.jsonl import JsonlFeedbackExporter
from otel_feedback._export.langfuse import LangfuseFeedbackExporter
from otel_feedback._export.langsmith import LangSmithFeedbackExporter
from otel_feedback._export.memory import InMemoryFeedbackExporter
from otel_feedback._export.mlflow import MLflowFeedbackExporter
from otel_feedback._export.otlp import OTLPFeedbackExporter
from otel_feedback._export.phoenix import PhoenixFeedbackExporter
from otel_feedback._export.processor import FeedbackSpanProcessor
from otel_feedback._instrumentor import FeedbackInstrumentor
from otel_feedback._model import Feedback, FeedbackCategory, FeedbackConfig, FeedbackSource
from otel_feedback._recording.record import record_feedback
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.tokens import create_feedback_token, record_feedback_from_token
from otel_feedback._version import __version__

__all__ = [
    "ConsoleFeedbackExporter",
    "Feedback",
    "FeedbackCategory",
    "FeedbackConfig",
    "FeedbackExportResult",
    "FeedbackExportStats",
    "FeedbackExporter",
    "FeedbackInstrumentor",
    "FeedbackSource",
    "FeedbackSpanProcessor",
    "FeedbackTokenError",
    "InMemoryFeedbackExporter",
    "InvalidFeedbackError",
    "JsonlFeedbackExporter",
    "LangSmithFeedbackExporter",
    "LangfuseFeedbackExporter",
    "MLflowFeedbackExporter",
    "OTLPFeedbackExporter",
    "PartialFeedbackExport",
    "PhoenixFeedbackExporter",
    "RecordedFeedback",
    "__version__",
    "configure",
    "create_feedback_token",
    "record_feedback",
    "record_feedback_from_token",
]
