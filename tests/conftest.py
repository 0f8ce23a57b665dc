from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from opentelemetry.util._once import Once

from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter, record_feedback
from otel_feedback._log import reset_warnings
from tests.disks import TinyDisk
from tests.otlp_receiver import OTLPReceiver
from tests.phoenix_server import PhoenixServer, phoenix_bin
from tests.server_process import installed


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


def trace_judged_elsewhere(
    span_exporter: Callable[[], SpanExporter], resource: Resource | None = None
) -> tuple[int, int]:
    """A trace judged by a process that saw none of its spans end; its trace id and child's id.

    An application with no FeedbackSpanProcessor sends a root and its child through
    ``span_exporter()``; then a judge, the global provider here, with only the ids, records
    ``faithful`` on the child and ``trace_quality`` on the whole trace, its carriers going
    through another ``span_exporter()``.
    """
    app = TracerProvider(resource=resource or Resource.create({}))
    app.add_span_processor(SimpleSpanProcessor(span_exporter()))
    tracer = app.get_tracer("app")
    with (
        tracer.start_as_current_span("root") as root,
        tracer.start_as_current_span("child") as child,
    ):
        pass
    app.shutdown()
    trace_id, child_id = root.get_span_context().trace_id, child.get_span_context().span_id
    judge = make_pipeline()
    judge.provider.add_span_processor(SimpleSpanProcessor(span_exporter()))
    _reset_global_tracer_provider()
    trace.set_tracer_provider(judge.provider)
    try:
        record_feedback("faithful", score=1, trace_id=trace_id, run_id=child_id)
        record_feedback("trace_quality", score=0.5, trace_id=trace_id)
        judge.flush()
    finally:
        judge.provider.shutdown()
        _reset_global_tracer_provider()
    return trace_id, child_id


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    """A 1 MiB tmpfs (skipped, saying why, where mounting is not permitted)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir(mode=0o700)
    if sys.platform != "linux":
        pytest.skip("a tmpfs is mounted on Linux only")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr}")
    try:
        yield TinyDisk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """A real Arize Phoenix server of this module's own (its own working directory)."""
    executable = installed(phoenix_bin(), "Phoenix")
    server = PhoenixServer(executable, tmp_path_factory.mktemp("phoenix"))
    yield server
    server.stop()
