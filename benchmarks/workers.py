"""Workers of every start method: how many records reach the receiver, ours and the SDK's.

    python benchmarks/workers.py

Each worker makes its own pipeline, records 25 records and returns without shutting it down:
this package's FeedbackSpanProcessor (OTLP feedback log events), and the SDK's own log
pipeline (BatchLogRecordProcessor + OTLP log exporter) in the same situation. Four tasks run
as ``Process``es, in a ``Pool`` closed and joined, and in ``with Pool() as pool`` (which ends
its workers with SIGTERM), under fork, spawn and forkserver. Prints records received of 100.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.otlp_receiver import OTLPReceiver

APP = """
import multiprocessing, sys

COUNT = 25
ENDPOINT, WHO = sys.argv[1], sys.argv[4]

def work(task):
    if WHO == "ours":
        from opentelemetry.sdk.trace import TracerProvider
        from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback
        provider = TracerProvider()
        provider.add_span_processor(FeedbackSpanProcessor(OTLPFeedbackExporter(endpoint=ENDPOINT)))
        with provider.get_tracer("worker").start_as_current_span("task"):
            for i in range(COUNT):
                record_feedback("k", score=i)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        provider = LoggerProvider()
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=ENDPOINT)))
        logger = provider.get_logger("worker")
        from opentelemetry._logs import LogRecord
        for i in range(COUNT):
            logger.emit(LogRecord(body=f"record {i}"))
    return task

if __name__ == "__main__":
    method, how = sys.argv[2], sys.argv[3]
    context = multiprocessing.get_context(method)
    if how == "Process":
        workers = [context.Process(target=work, args=(t,)) for t in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    elif how == "Pool, close+join":
        pool = context.Pool(2)
        pool.map(work, range(4))
        pool.close()
        pool.join()
    else:
        with context.Pool(2) as pool:
            pool.map(work, range(4))
"""


def main() -> None:
    methods = [
        m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = str(Path(__file__).parent.parent)
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "app.py"
        script.write_text(APP)
        print("| start method | workers | otel-feedback | SDK BatchLogRecordProcessor |")
        print("| --- | --- | ---: | ---: |")
        for method in methods:
            for how in ("Process", "Pool, close+join", "with Pool() (SIGTERM)"):
                counts = []
                for who in ("ours", "sdk"):
                    with OTLPReceiver() as receiver:
                        endpoint = receiver.http_endpoint + "/v1/logs"
                        subprocess.run(
                            [sys.executable, str(script), endpoint, method, how, who],
                            env=environment,
                            capture_output=True,
                            timeout=300,
                            check=False,
                        )
                        counts.append(len(receiver.logs()))
                print(f"| {method} | {how} | {counts[0]} of 100 | {counts[1]} of 100 |")


if __name__ == "__main__":
    main()
