"""Process exit without shutdown(), and fork: real processes, a real receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.otlp_receiver import OTLPReceiver

SETUP = """
import os, sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

provider = TracerProvider(shutdown_on_exit=False)  # nobody shuts anything down
processor = FeedbackSpanProcessor(
    OTLPFeedbackExporter(endpoint=sys.argv[1], resource=Resource.create({})),
    schedule_delay_millis=60_000,  # nothing leaves on its own before exit
)
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")


def feedback(key, score):
    with tracer.start_as_current_span("run"):
        record_feedback(key, score=score)
"""

EXIT_WITHOUT_SHUTDOWN = (
    SETUP
    + """
for i in range(50):
    feedback("k", i)
"""
)

FORK = (
    SETUP
    + """
feedback("before", 0)
pid = os.fork()
if pid == 0:
    feedback("child", 1)
    os._exit(0 if processor.force_flush(10_000) else 3)
feedback("parent", 2)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
)


def _run(code: str, receiver: OTLPReceiver) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run(
        [sys.executable, "-c", code, f"{receiver.http_endpoint}/v1/logs"],
        env=environment,
        check=True,
        timeout=120,
    )


def test_queued_records_leave_at_exit_without_shutdown(receiver: OTLPReceiver) -> None:
    _run(EXIT_WITHOUT_SHUTDOWN, receiver)
    scores = sorted(log.attributes["otel_feedback.score"] for log in receiver.logs())
    assert scores == list(range(50))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exports_its_own_records_once(receiver: OTLPReceiver) -> None:
    _run(FORK, receiver)
    keys = sorted(log.attributes["gen_ai.evaluation.name"] for log in receiver.logs())
    # The parent's queued record leaves once, from the parent; the child sends only its own.
    assert keys == ["before", "child", "parent"]


MULTIPROCESSING = """
import multiprocessing, sys
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, JsonlFeedbackExporter, record_feedback

provider = TracerProvider(shutdown_on_exit=False)
processor = FeedbackSpanProcessor(
    JsonlFeedbackExporter(sys.argv[1]), schedule_delay_millis=60_000
)
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")


def work(count):
    for i in range(count):
        with tracer.start_as_current_span("child"):
            record_feedback("child", score=i)


if __name__ == "__main__":
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=work, args=(20,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_children_deliver_before_they_end(tmp_path: Path) -> None:
    # A multiprocessing child ends with os._exit: no atexit hook runs there.
    script, out = tmp_path / "app.py", tmp_path / "out.jsonl"
    script.write_text(MULTIPROCESSING)
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=120)
    assert len(out.read_text().splitlines()) == 60
