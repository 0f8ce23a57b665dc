"""User and evaluator feedback as a first-class OpenTelemetry signal.

Record feedback inside traced code; it travels as a ``gen_ai.evaluation.result`` span event
and, through :class:`FeedbackSpanProcessor`, as LangSmith-format feedback records to the
exporters you choose (OTLP logs, JSONL, console, memory, Phoenix, LangSmith, MLflow,
Langfuse). ``configure()`` wires it from the standard OpenTelemetry environment variables,
and under ``opentelemetry-instrument`` it needs no code at all::

    from opentelemetry import trace
    from otel_feedback import record_feedback

    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span("answer_question"):
        ...
        record_feedback("correctness", score=1, comment="matches the reference")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from otel_feedback._errors import FeedbackTokenError, InvalidFeedbackError
from otel_feedback._recording.record import record_feedback
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.run import RunHandle, current_run
from otel_feedback._version import __version__

if TYPE_CHECKING:
    from otel_feedback._configure import configure
    from otel_feedback._evaluation.judged import JudgedRun
    from otel_feedback._evaluation.online import OnlineEvaluationProcessor
    from otel_feedback._evaluation.stats import EvaluationStats
    from otel_feedback._export.base import (
        FeedbackExporter,
        FeedbackExportResult,
        PartialFeedbackExport,
        RetryLater,
    )
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
    from otel_feedback._recording.tokens import (
        create_feedback_token,
        record_feedback_from_token,
    )

__all__ = [
    "ConsoleFeedbackExporter",
    "EvaluationStats",
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
    "JudgedRun",
    "LangSmithFeedbackExporter",
    "LangfuseFeedbackExporter",
    "MLflowFeedbackExporter",
    "OTLPFeedbackExporter",
    "OnlineEvaluationProcessor",
    "PartialFeedbackExport",
    "PhoenixFeedbackExporter",
    "RecordedFeedback",
    "RetryLater",
    "RunHandle",
    "__version__",
    "configure",
    "create_feedback_token",
    "current_run",
    "record_feedback",
    "record_feedback_from_token",
]

# Imported when first used (PEP 562): recording needs none of these, and the exporters,
# pydantic's models, sqlite3, HTTP clients and the instrumentation package cost more to
# import than the rest of the package.
_LAZY = {
    "ConsoleFeedbackExporter": "otel_feedback._export.console",
    "EvaluationStats": "otel_feedback._evaluation.stats",
    "JudgedRun": "otel_feedback._evaluation.judged",
    "OnlineEvaluationProcessor": "otel_feedback._evaluation.online",
    "Feedback": "otel_feedback._model",
    "FeedbackCategory": "otel_feedback._model",
    "FeedbackConfig": "otel_feedback._model",
    "FeedbackExportResult": "otel_feedback._export.base",
    "FeedbackExportStats": "otel_feedback._export.engine",
    "FeedbackExporter": "otel_feedback._export.base",
    "FeedbackInstrumentor": "otel_feedback._instrumentor",
    "FeedbackSource": "otel_feedback._model",
    "FeedbackSpanProcessor": "otel_feedback._export.processor",
    "InMemoryFeedbackExporter": "otel_feedback._export.memory",
    "JsonlFeedbackExporter": "otel_feedback._export.jsonl",
    "LangSmithFeedbackExporter": "otel_feedback._export.langsmith",
    "LangfuseFeedbackExporter": "otel_feedback._export.langfuse",
    "MLflowFeedbackExporter": "otel_feedback._export.mlflow",
    "OTLPFeedbackExporter": "otel_feedback._export.otlp",
    "PartialFeedbackExport": "otel_feedback._export.base",
    "PhoenixFeedbackExporter": "otel_feedback._export.phoenix",
    "RetryLater": "otel_feedback._export.base",
    "configure": "otel_feedback._configure",
    "create_feedback_token": "otel_feedback._recording.tokens",
    "record_feedback_from_token": "otel_feedback._recording.tokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_feedback' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
