"""Where each exporter of ``OTEL_PYTHON_FEEDBACK_EXPORTER`` sends, in words a user can check."""

from __future__ import annotations

from otel_feedback import _environment as env
from otel_feedback._cli._redact import safe_url

__all__ = ["destination_of"]


def destination_of(name: str) -> str:
    """``name``'s destination, as configured; URLs shown without their credentials."""
    if name == "otlp":
        return f"OTLP ({env.otlp_logs_protocol()}) at {safe_url(env.otlp_logs_endpoint())}"
    if name == "phoenix":
        return f"Phoenix at {safe_url(env.phoenix_endpoint())}"
    if name == "langsmith":
        return f"LangSmith at {safe_url(env.langsmith_endpoint())}"
    if name == "mlflow":
        return f"MLflow at {safe_url(env.mlflow_tracking_uri())}"
    if name == "langfuse":
        return f"Langfuse at {safe_url(env.langfuse_base_url())}"
    if name == "jsonl":
        return f"the file {env.jsonl_path()}"
    if name == "console":
        return "standard output"
    return name
