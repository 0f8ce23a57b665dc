"""The vendor exporters by name, configured by the vendors' own variables."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_feedback
from otel_feedback import (
    LangfuseFeedbackExporter,
    LangSmithFeedbackExporter,
    MLflowFeedbackExporter,
)
from otel_feedback import _environment as env

VENDOR_VARIABLES = {
    env.LANGSMITH_ENDPOINT: "http://langsmith.internal:1984",
    env.LANGSMITH_API_KEY: "lsv2-secret",
    env.LANGSMITH_PROJECT: "support-bot",
    env.MLFLOW_TRACKING_URI: "http://mlflow.internal:5000",
    env.MLFLOW_TRACKING_TOKEN: "mlflow-secret",
    env.LANGFUSE_BASE_URL: "http://langfuse.internal:3000",
    env.LANGFUSE_PUBLIC_KEY: "pk-lf",
    env.LANGFUSE_SECRET_KEY: "sk-lf-secret",
}


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider()
    yield made
    made.shutdown()


def test_the_exporter_variable_names_the_vendor_exporters(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in VENDOR_VARIABLES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EXPORTER, "langsmith, mlflow ,langfuse")
    processor = otel_feedback.configure(tracer_provider=provider)
    assert processor is not None
    built = processor._exporters
    assert [type(e) for e in built] == [
        LangSmithFeedbackExporter,
        MLflowFeedbackExporter,
        LangfuseFeedbackExporter,
    ]
    shown = " ".join(repr(e) for e in built)
    assert "http://langsmith.internal:1984" in shown
    assert "'support-bot'" in shown
    assert "http://mlflow.internal:5000" in shown
    assert "http://langfuse.internal:3000" in shown
    for secret in ("lsv2-secret", "mlflow-secret", "sk-lf-secret"):
        assert secret not in shown


def test_a_vendor_exporter_without_credentials_is_skipped_with_a_warning_naming_them(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in (env.LANGSMITH_API_KEY, env.LANGFUSE_PUBLIC_KEY, env.LANGFUSE_SECRET_KEY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(env.MLFLOW_TRACKING_URI, "databricks")
    monkeypatch.setenv(env.OTEL_PYTHON_FEEDBACK_EXPORTER, "langsmith,mlflow,langfuse,console")
    with caplog.at_level(logging.WARNING, logger="otel_feedback"):
        processor = otel_feedback.configure(tracer_provider=provider)
    assert processor is not None
    assert [type(e).__name__ for e in processor._exporters] == ["ConsoleFeedbackExporter"]
    assert "LANGSMITH_API_KEY" in caplog.text
    assert "MLFLOW_TRACKING_URI" in caplog.text
    assert "'databricks'" in caplog.text
    assert "LANGFUSE_PUBLIC_KEY" in caplog.text
