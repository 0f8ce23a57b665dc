"""record_feedback next to its peers, per call, in one run: Logfire and LangSmith.

    bash benchmarks/run     # makes .venv-bench (this package, logfire, langsmith), runs all

- Logfire's ``logfire.experimental.annotations.record_feedback`` (a span through a
  traceparent), against ours after the run (a carrier span through the same traceparent).
- LangSmith's ``Client.create_feedback``, a synchronous POST when tracing goes through OTel,
  to an HTTP server in another process on 127.0.0.1, against ours by trace and run id.
- Inside the run, where ours is one span event, Logfire's and LangSmith's users still make
  the same calls as above: those calls against ours on the current span.
Each library runs as its users run it (ours on an SDK TracerProvider with the feedback
processor, Logfire after logfire.configure), each in a process of its own, the processes
taking turns in every repeat so that the machine's noise falls on all alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence

import logfire
from langsmith import Client
from logfire.experimental.annotations import record_feedback as logfire_record_feedback
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    record_feedback,
)

SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body leave in one segment: no delayed-ACK stalls
    disable_nagle_algorithm = True

    def _reply(self):
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Discard(FeedbackExporter):
    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:  # noqa: ARG002
        return FeedbackExportResult.SUCCESS


def per_call_us(run: Callable[[], object], calls: int) -> float:
    for _ in range(min(calls, 20)):
        run()  # warm up
    started = time.perf_counter_ns()
    for _ in range(calls):
        run()
    return (time.perf_counter_ns() - started) / calls / 1000


def traceparent_of_a_run() -> tuple[str, trace.SpanContext]:
    with trace.get_tracer("peers").start_as_current_span("answer") as answer:
        headers: dict[str, str] = {}
        inject(headers)
    return headers["traceparent"], answer.get_span_context()


def ours_in_the_run(calls: int) -> float:
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(Discard(), max_queue_size=100_000)
    provider.add_span_processor(processor)
    with provider.get_tracer("peers").start_as_current_span("answer"):
        result = per_call_us(lambda: record_feedback("correctness", score=1, comment="ok"), calls)
    provider.shutdown()
    return result


def ours(calls: int, *, by_ids: bool) -> float:
    # As our users run it: an SDK TracerProvider with the feedback processor.
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(Discard(), max_queue_size=100_000)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    traceparent, ids = traceparent_of_a_run()
    if by_ids:
        result = per_call_us(
            lambda: record_feedback(
                "correctness", score=1, comment="ok", trace_id=ids.trace_id, run_id=ids.span_id
            ),
            calls,
        )
    else:
        result = per_call_us(
            lambda: record_feedback("correctness", score=1, comment="ok", traceparent=traceparent),
            calls,
        )
    provider.shutdown()
    return result


def theirs_logfire(calls: int) -> float:
    # As Logfire's users run it: logfire.configure, here sending nowhere.
    logfire.configure(send_to_logfire=False, console=False)
    traceparent, _ = traceparent_of_a_run()
    return per_call_us(
        lambda: logfire_record_feedback(traceparent, "correctness", 1, comment="ok"), calls
    )


def theirs_langsmith(calls: int) -> float:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    os.environ["LANGSMITH_TRACING"] = "false"
    client = Client(api_url=f"http://127.0.0.1:{port}", api_key="bench", auto_batch_tracing=False)
    run_id, trace_id, session = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        return per_call_us(
            lambda: client.create_feedback(
                run_id=run_id,
                trace_id=trace_id,
                key="correctness",
                score=1,
                comment="ok",
                session_id=session,
            ),
            calls,
        )
    finally:
        server.kill()
        server.wait()


CHILDREN: dict[str, Callable[[int], float]] = {
    "ours-traceparent": lambda calls: ours(calls, by_ids=False),
    "ours-ids": lambda calls: ours(calls, by_ids=True),
    "ours-in-the-run": ours_in_the_run,
    "logfire": theirs_logfire,
    "langsmith": theirs_langsmith,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=sorted(CHILDREN))
    args = parser.parse_args()
    if args.child:
        print(CHILDREN[args.child](args.calls))
        return
    # Each library in a process of its own, as each is configured globally; the processes
    # take turns in every repeat, so the machine's noise falls on all alike.
    samples: dict[str, list[float]] = {name: [] for name in CHILDREN}
    for _ in range(args.repeats):
        for name in CHILDREN:
            calls = args.calls if name != "langsmith" else max(1, args.calls // 10)
            done = subprocess.run(
                [sys.executable, __file__, "--child", name, "--calls", str(calls)],
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(float(done.stdout.split()[-1]))
    median = {name: statistics.median(values) for name, values in samples.items()}
    rows = [
        ("otel_feedback.record_feedback(traceparent=...)", median["ours-traceparent"]),
        ("logfire record_feedback(traceparent, ...)", median["logfire"]),
        ("otel_feedback.record_feedback(trace_id=..., run_id=...)", median["ours-ids"]),
        ("langsmith Client.create_feedback (POST to 127.0.0.1)", median["langsmith"]),
        ("otel_feedback.record_feedback() inside the run", median["ours-in-the-run"]),
    ]
    print(f"{'measure (median per call)':<58}{'us':>10}")
    for label, micros in rows:
        print(f"{label:<58}{micros:>10.1f}")
    ratios = [
        ("Logfire / ours, both through a traceparent", "logfire", "ours-traceparent"),
        ("LangSmith / ours, both by ids after the run", "langsmith", "ours-ids"),
        ("Logfire / ours, inside the run", "logfire", "ours-in-the-run"),
        ("LangSmith / ours, inside the run", "langsmith", "ours-in-the-run"),
    ]
    for label, slower, faster in ratios:
        print(f"{label:<58}{median[slower] / median[faster]:>9.1f}x")


if __name__ == "__main__":
    main()
