from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from opentelemetry.util._once import Once

from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter
from otel_feedback._log import reset_warnings
from tests.otlp_receiver import OTLPReceiver


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    reset_warnings()


@dataclass
class Pipeline:
    provider: TracerProvider
    tracer: Tracer
    processor: FeedbackSpanProcessor
    feedback: InMemoryFeedbackExporter
    spans: InMemorySpanExporter

    def flush(self) -> None:
        assert self.processor.force_flush(10_000)


def make_pipeline(**processor_options: float) -> Pipeline:
    provider = TracerProvider(resource=Resource.create({"service.name": "feedback-tests"}))
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    feedback = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(feedback, **processor_options)  # type: ignore[arg-type]
    provider.add_span_processor(processor)
    return Pipeline(provider, provider.get_tracer("tests"), processor, feedback, spans)


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    built = make_pipeline()
    yield built
    built.provider.shutdown()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as started:
        yield started


def _reset_global_tracer_provider() -> None:
    # The API sets the global provider once per process; tests that need carriers on a
    # fresh provider each reset it, as opentelemetry-python's own test utilities do.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def global_pipeline() -> Iterator[Pipeline]:
    """A pipeline whose provider is the global one, so carrier spans land in it."""
    built = make_pipeline()
    _reset_global_tracer_provider()
    trace.set_tracer_provider(built.provider)
    yield built
    built.provider.shutdown()
    _reset_global_tracer_provider()
