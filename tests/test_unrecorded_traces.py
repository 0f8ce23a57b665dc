"""Feedback in a sampled-out trace reaches the processors of the provider that made the span.

A sampled-out span is a NonRecordingSpan that does not say which provider made it; the
global provider's sampler notes the traces it drops (otel_feedback._recording.unsampled).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter, record_feedback
from otel_feedback._recording import unsampled
from otel_feedback._sdk import DropNoting
from tests.conftest import _reset_global_tracer_provider


class _App:
    """A provider with its own FeedbackSpanProcessor and in-memory exporter."""

    def __init__(self, *, drops: bool, make_global: bool = False) -> None:
        self.provider = TracerProvider(sampler=ALWAYS_OFF if drops else ALWAYS_ON)
        if make_global:  # before its processor, as otel_feedback.configure() does
            trace.set_tracer_provider(self.provider)
        self.feedback = InMemoryFeedbackExporter()
        self.processor = FeedbackSpanProcessor(self.feedback)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("app")

    def keys(self) -> list[str]:
        assert self.processor.force_flush(10_000)
        return [record.key for record in self.feedback.get_finished_feedback()]


@pytest.fixture(autouse=True)
def _fresh_global() -> Iterator[None]:
    _reset_global_tracer_provider()
    yield
    _reset_global_tracer_provider()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_measured_case_a_shut_down_global_provider(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 19, finding 8: the global provider was shut down; a second one made the span."""
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    first = _App(drops=False, make_global=True)
    first.provider.shutdown()
    second = _App(drops=True)
    with second.tracer.start_as_current_span("sampled out") as span:
        assert not span.is_recording()
        recorded = record_feedback("helpful", score=1)
    assert recorded is not None
    assert second.keys() == ["helpful"]
    assert _warnings(caplog) == []
    second.provider.shutdown()


def test_each_provider_gets_the_feedback_of_its_own_spans() -> None:
    """Both providers have a live FeedbackSpanProcessor and drop every trace."""
    main = _App(drops=True, make_global=True)
    other = _App(drops=True)
    with main.tracer.start_as_current_span("main's"):
        assert record_feedback("on_main", score=1) is not None
    with other.tracer.start_as_current_span("other's"):
        assert record_feedback("on_other", score=1) is not None
    with main.tracer.start_as_current_span("main's again"):
        assert record_feedback("on_main_again", score=1) is not None
    assert main.keys() == ["on_main", "on_main_again"]
    assert other.keys() == ["on_other"]
    main.provider.shutdown()
    other.provider.shutdown()


def test_a_watched_second_provider_is_known_by_its_drops() -> None:
    main = _App(drops=True, make_global=True)
    second, third = _App(drops=True), _App(drops=True)
    assert unsampled.watch(second.provider) == "new"
    with second.tracer.start_as_current_span("second's"):
        assert record_feedback("on_second", score=1) is not None
    assert (main.keys(), second.keys(), third.keys()) == ([], ["on_second"], [])
    for app in (main, second, third):
        app.provider.shutdown()


def test_the_provider_that_made_the_span_without_a_processor_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    main = _App(drops=True, make_global=True)
    other = _App(drops=True)
    other.provider.shutdown()  # its processor is gone; main's is not
    with other.tracer.start_as_current_span("other's"):
        assert record_feedback("lost", score=1) is None
    assert main.keys() == []  # not given to a provider that did not make the span
    (warning,) = _warnings(caplog)
    assert "the TracerProvider that made its span has no FeedbackSpanProcessor running" in warning
    assert "no FeedbackSpanProcessor is running" not in warning
    main.provider.shutdown()


def test_with_every_processor_shut_down_the_warning_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    main = _App(drops=False, make_global=True)
    other = _App(drops=True)
    main.provider.shutdown()
    other.provider.shutdown()
    with other.tracer.start_as_current_span("other's"):
        assert record_feedback("lost", score=1) is None
    (warning,) = _warnings(caplog)
    assert "no FeedbackSpanProcessor is running" in warning
    assert "each was shut down" in warning


def test_a_remote_unsampled_parent_goes_to_the_global_providers_processors() -> None:
    main = _App(drops=False, make_global=True)
    other = _App(drops=False)
    traceparent = f"00-{'ab' * 16}-{'cd' * 8}-00"
    assert record_feedback("remote", score=1, traceparent=traceparent) is not None
    assert (main.keys(), other.keys()) == (["remote"], [])
    main.provider.shutdown()
    other.provider.shutdown()


def test_watching_keeps_the_providers_decisions_and_tracers() -> None:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    before = provider.get_tracer("made before")
    assert unsampled.watch(provider) == "new"
    assert unsampled.watch(provider) == "watching"
    assert isinstance(provider.sampler, DropNoting)
    assert provider.sampler.get_description().startswith("ParentBased{root:AlwaysOffSampler")
    after = provider.get_tracer("made after")
    for tracer in (before, after):
        with tracer.start_as_current_span("dropped") as span:
            assert not span.is_recording()
            trace_id = span.get_span_context().trace_id
        assert unsampled._dropped[trace_id] is provider._active_span_processor
    assert unsampled.watch(trace.NoOpTracerProvider()) == "not-sdk"


def test_the_dropped_traces_remembered_are_bounded() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    unsampled.watch(provider)
    tracer = provider.get_tracer("t")
    first = tracer.start_span("first").get_span_context().trace_id
    for _ in range(2 * unsampled._MAX_TRACES + 10):
        tracer.start_span("dropped")
    assert len(unsampled._dropped) <= 2 * unsampled._MAX_TRACES
    assert first not in unsampled._dropped
