"""Chaos: a real application sends feedback while its OTLP receiver is killed and restarted.

    python benchmarks/chaos.py [--records N] [--rate R] [--kill-every S] [--down-for S]

Three processes on 127.0.0.1: this controller; a receiver (the tests' OTLP receiver) that
writes every record id it takes to a file before answering; and an application that records
N feedback records at R per second over OTLP/HTTP, then flushes and shuts down. Every
``--kill-every`` seconds the receiver is killed with SIGKILL and comes back on the same port
``--down-for`` seconds later. Prints records sent, received, duplicated and lost.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _receiver import free_port, start_receiver

RECEIVER = """
import signal, sys, threading
sys.path.insert(0, sys.argv[1])
from tests.otlp_receiver import OTLPReceiver

out = open(sys.argv[3], "a", buffering=1)
def keep(logs):
    out.write("".join(log.attributes["otel_feedback.id"] + "\\n" for log in logs))
    out.flush()

receiver = OTLPReceiver(http_port=int(sys.argv[2]), on_logs=keep).start()
print("ready", flush=True)
threading.Event().wait()
"""

APP = """
import sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

port, records, rate, sent_path = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
provider = TracerProvider()
processor = FeedbackSpanProcessor(
    OTLPFeedbackExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/logs", timeout=1, resource=Resource.create({})
    ),
    schedule_delay_millis=100,
    max_queue_size=100_000,
)
provider.add_span_processor(processor)
tracer = provider.get_tracer("chaos")
start = time.monotonic()
with open(sent_path, "w") as sent:
    for i in range(records):
        with tracer.start_as_current_span("answer"):
            record = record_feedback("user_rating", score=i % 2, comment=f"n{i}")
        sent.write(f"{record.id}\\n")
        pause = start + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # the application's own pace
flushed = processor.force_flush(120_000)
print(f"flushed={flushed} dropped={processor.dropped_records}", flush=True)
provider.shutdown()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--kill-every", type=float, default=1.5)
    parser.add_argument("--down-for", type=float, default=1.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ids, sent_path = Path(tmp) / "received.txt", Path(tmp) / "sent.txt"
        port = free_port()
        receiver = start_receiver(RECEIVER, port, str(ids))
        app = subprocess.Popen(
            [
                sys.executable,
                "-c",
                APP,
                str(port),
                str(args.records),
                str(args.rate),
                str(sent_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        )
        kills = 0
        started = time.monotonic()
        while app.poll() is None:
            time.sleep(args.kill_every)  # the schedule of the chaos
            if app.poll() is not None:
                break
            receiver.send_signal(signal.SIGKILL)
            receiver.wait()
            kills += 1
            time.sleep(args.down_for)  # the outage
            receiver = start_receiver(RECEIVER, port, str(ids))
        elapsed = time.monotonic() - started
        app_report = app.stdout.read().strip() if app.stdout else ""
        receiver.send_signal(signal.SIGKILL)
        receiver.wait()

        sent = sent_path.read_text().split()
        received = ids.read_text().split() if ids.exists() else []
        unique = set(received)
        lost = set(sent) - unique
        rows = [
            ("records sent", len(sent)),
            ("records received (unique)", len(unique)),
            ("received more than once", len(received) - len(unique)),
            ("lost", len(lost)),
            ("receiver kills", kills),
        ]
        for label, number in rows:
            print(f"{label:<28}{number:>8}")
        print(f"{'run time (s)':<28}{elapsed:>8.1f}")
        print(f"application: {app_report}")
        if lost or app.returncode:
            sys.exit(1)


if __name__ == "__main__":
    main()
