"""FeedbackInstrumentor: feedback export under ``opentelemetry-instrument``, with no code.

``opentelemetry-instrument`` configures the SDK first and then calls every installed
``opentelemetry_instrumentor`` entry point; this one adds a FeedbackSpanProcessor, with the
exporters the environment chooses, to the global SDK TracerProvider. Switch it off with
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=otel_feedback``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback._configure import attach, detach
from otel_feedback._environment import sdk_disabled
from otel_feedback._log import logger

__all__ = ["FeedbackInstrumentor", "FeedbackInstrumentorOptions"]


@dataclass
class FeedbackInstrumentorOptions:
    """Options of the instrumentor in a declarative configuration file (``OTEL_CONFIG_FILE``).

    Example, under ``instrumentation/development: python:``::

        otel_feedback:
          exporters: [otlp, jsonl]
    """

    exporters: list[str] | None = None
    """Exporter names; default ``OTEL_PYTHON_FEEDBACK_EXPORTER``."""


class FeedbackInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Adds feedback export to the global (or given) SDK TracerProvider. Idempotent.

    Example::

        FeedbackInstrumentor().instrument(tracer_provider=provider, exporters=["console"])

    With a proxy or no-op TracerProvider (no SDK configured) it does nothing but log at DEBUG.
    """

    configuration = FeedbackInstrumentorOptions

    def __init__(self) -> None:
        super().__init__()
        self._provider: TracerProvider | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """None: this instruments the OpenTelemetry SDK itself, not a library."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        if sdk_disabled():
            return
        provider = kwargs.get("tracer_provider") or trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            logger.debug(
                "No SDK TracerProvider is set (found %s); feedback export is not set up",
                type(provider).__name__,
            )
            return
        if attach(provider, kwargs.get("exporters")) is not None:
            self._provider = provider

    def _uninstrument(self, **kwargs: Any) -> None:  # noqa: ARG002 - the SDK's signature
        if self._provider is not None:
            detach(self._provider)
            self._provider = None
