"""Chaos: real processes, real sockets, SIGKILL; what is delivered, lost, and how long exit takes.

    python benchmarks/chaos.py [receiver] [--records N] [--rate R] [--kill-every S] [--down-for S]
    python benchmarks/chaos.py crash [--kills K] [--rate R]
    python benchmarks/chaos.py exit [--records N]
    python benchmarks/chaos.py burst [--records N]
    python benchmarks/chaos.py outage [--records N] [--down-for S]
    python benchmarks/chaos.py phoenix404 [--records N] [--watch S]
    python benchmarks/chaos.py fullspool [--records N]
    python benchmarks/chaos.py deleted [--rate R]

``receiver``: an application records N feedback records at R per second over OTLP/HTTP while
its receiver (the tests' OTLP receiver, writing each record id it takes to a file before
answering) is killed with SIGKILL every ``--kill-every`` seconds and comes back
``--down-for`` seconds later. Prints records sent, received, duplicated and lost.

``crash``: the application itself is killed with SIGKILL K times while it records at R per
second with the spool on and no receiver; then one more start with the receiver up. Prints,
by how long before the kill each record's span ended, how many were lost.

``exit``: how long a process takes to exit (no shutdown() called) with N records queued and
the endpoint down (connection refused, then a port that accepts and never answers): the SDK's
own log pipeline (BatchLogRecordProcessor + OTLP log exporter) next to this package's default
setup, side by side, each timed from the last record to the process's end.

``burst``: the default setup (``configure()``, OTLP) records N records in a loop and exits
normally with the receiver up; prints how many arrived.

``phoenix404``: a Phoenix stand-in on 127.0.0.1 answers every annotation request with 404
naming the spans it lacks (as Phoenix does before it ingests them); N records are made and
watched for ``--watch`` seconds: prints the HTTP requests made, then how long ``shutdown()``
takes and what became of the records.

``fullspool``: N records at once to two exporters that take 20 ms per batch, with the spool
on at its default bound (100,000 rows, so N records take 2N rows and overflow it): prints, per
exporter, the records sent, how many distinct, and what the counts say.

``deleted``: the application records at R per second with the spool on and no receiver; after
1.5 s its spool file (and ``-wal``, ``-shm``) is deleted, 1.5 s later it is killed with
SIGKILL; then one more start with the receiver up. Prints how many records made before and
after the deletion were delivered.

``outage``: the endpoint is down for ``--down-for`` seconds while N records are made with the
spool on, then comes back; prints how many are still undelivered every second, in the same
process (no restart).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


CRASH_APP = """
import sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

port, rate, spool = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
provider = TracerProvider(shutdown_on_exit=False)
processor = FeedbackSpanProcessor(
    OTLPFeedbackExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/logs", timeout=1, resource=Resource.create({})
    ),
    spool_path=spool,
)
provider.add_span_processor(processor)
tracer = provider.get_tracer("crash")
if rate == 0:  # the restart: send what the spool holds, then stop
    print("flushed", processor.force_flush(120_000), flush=True)
    processor.shutdown()
    sys.exit(0)
start, i = time.monotonic(), 0
while True:
    with tracer.start_as_current_span("answer"):
        record = record_feedback("user_rating", score=i % 2)
    print(record.id, time.time(), flush=True)
    i += 1
    pause = start + i / rate - time.monotonic()
    if pause > 0:
        time.sleep(pause)  # the application's own pace
"""

SDK_EXIT_APP = """
import sys, time
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

provider = LoggerProvider()
provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
logger = provider.get_logger("app")
for i in range(int(sys.argv[1])):
    logger.emit(LogRecord(body=f"feedback {i}", event_name="gen_ai.evaluation.result"))
print(time.time(), flush=True)
"""

OUR_EXIT_APP = """
import sys, time
import otel_feedback
from opentelemetry import trace

otel_feedback.configure()
tracer = trace.get_tracer("app")
for i in range(int(sys.argv[1])):
    with tracer.start_as_current_span("answer"):
        otel_feedback.record_feedback("user_rating", score=i % 2)
print(time.time(), flush=True)
"""

BURST_APP = """
import sys
import otel_feedback
from opentelemetry import trace

processor = otel_feedback.configure()
tracer = trace.get_tracer("judge")
for i in range(int(sys.argv[1])):
    with tracer.start_as_current_span("score"):
        otel_feedback.record_feedback("correctness", score=i % 2)
"""

OUTAGE_APP = """
import sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

port, count, spool = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
provider = TracerProvider()
processor = FeedbackSpanProcessor(
    OTLPFeedbackExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/logs", timeout=1, resource=Resource.create({})
    ),
    spool_path=spool or None,
)
provider.add_span_processor(processor)
tracer = provider.get_tracer("outage")
for i in range(count):
    with tracer.start_as_current_span("answer"):
        record_feedback("user_rating", score=i % 2)
print("made", flush=True)
for second in range(1, 31):
    time.sleep(1)  # the observation's own pace
    stats = processor.stats()
    left = stats.received - stats.exported["OTLPFeedbackExporter"]
    print(second, left, flush=True)
    if left == 0:
        break
print("dropped", processor.dropped_records, flush=True)
"""


FULL_SPOOL_APP = """
import sys, time
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import (
    FeedbackExporter, FeedbackExportResult, FeedbackSpanProcessor, record_feedback,
)

records, spool = int(sys.argv[1]), sys.argv[2]


class Slow(FeedbackExporter):
    def __init__(self):
        self.distinct, self.sent = set(), 0

    def export(self, batch):
        time.sleep(0.02)  # the endpoint's own time per batch
        self.distinct |= {r.id for r in batch}
        self.sent += len(batch)
        return FeedbackExportResult.SUCCESS


class Other(Slow):
    pass


exporters = [Slow(), Other()]
processor = FeedbackSpanProcessor(exporters, spool_path=spool)
provider = TracerProvider(shutdown_on_exit=False)
provider.add_span_processor(processor)
tracer = provider.get_tracer("chaos")
started = time.monotonic()
for i in range(records):
    with tracer.start_as_current_span("run"):
        record_feedback("k", score=i)
flushed = processor.force_flush(300_000)
elapsed = time.monotonic() - started
stats = processor.stats()
provider.shutdown()
print(f"{records} records at once, two exporters at 20 ms per batch, spool at its bound:")
for exporter in exporters:
    name = type(exporter).__name__
    print(
        f"  {name}: sent {exporter.sent}, distinct {len(exporter.distinct)}, "
        f"sent twice {exporter.sent - len(exporter.distinct)}; exported {stats.exported[name]}, "
        f"dropped {sum(stats.dropped[name].values())}, left in the spool {stats.spooled[name]}"
    )
print(f"  flushed: {flushed}, in {elapsed:.1f} s")
"""


def _clean_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(extra)
    return environment


def _restart_with_the_receiver_up(tmp: Path, port: int, spool: str) -> set[str]:
    """One more start of the crashed application, the receiver up: the record ids received."""
    ids = tmp / "received.txt"
    receiver = start_receiver(RECEIVER, port, str(ids))
    subprocess.run(
        [sys.executable, "-c", CRASH_APP, str(port), "0", spool],
        check=True,
        env=_clean_environment(),
        stdout=subprocess.DEVNULL,
    )
    receiver.send_signal(signal.SIGKILL)
    receiver.wait()
    return set(ids.read_text().split()) if ids.exists() else set()


def _record_until_killed(
    tmp: Path,
    port: int,
    rate: float,
    spool: str,
    *,
    meanwhile: Callable[[], None] = lambda: time.sleep(1.5),
) -> tuple[float, list[tuple[str, str]]]:
    """Run the recording application until ``meanwhile`` returns, then SIGKILL it.

    Returns the kill's time and the (record id, time) pairs the application printed.
    """
    printed = tmp / "made.txt"
    # Into a file, not a pipe: a pipe nobody reads until the end fills, and stops the
    # application, after some 1,000 lines.
    with printed.open("w") as out:
        app = subprocess.Popen(
            [sys.executable, "-c", CRASH_APP, str(port), str(rate), spool],
            stdout=out,
            text=True,
            env=_clean_environment(),
        )
        meanwhile()
        app.send_signal(signal.SIGKILL)
        killed_at = time.time()
        app.wait()
    pairs = [line.split() for line in printed.read_text().splitlines()]
    return killed_at, [(p[0], p[1]) for p in pairs if len(p) == 2]


def crash(kills: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool, port = str(Path(tmp) / "spool.sqlite"), free_port()
        made: list[tuple[str, float]] = []  # (id, seconds before its kill the span ended)
        for _ in range(kills):
            killed_at, printed = _record_until_killed(Path(tmp), port, rate, spool)
            made += [(i, killed_at - float(at)) for i, at in printed]
        received = _restart_with_the_receiver_up(Path(tmp), port, spool)
    print(f"{kills} SIGKILLs at {rate:g} records/s, spool on, no receiver until the restart")
    print(f"{'span ended before the kill':<30}{'records':>9}{'lost':>7}")
    bands = [(0.2, float("inf"), ">= 200 ms"), (0.05, 0.2, "50-200 ms"), (0.0, 0.05, "< 50 ms")]
    for low, high, label in bands:
        band = [i for i, age in made if low <= age < high]
        lost = [i for i in band if i not in received]
        print(f"{label:<30}{len(band):>9}{len(lost):>7}")
    lost_ages = [age for i, age in made if i not in received]
    if lost_ages:
        print(f"oldest lost record: its span ended {max(lost_ages) * 1000:.0f} ms before the kill")


def deleted(rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool, port = str(Path(tmp) / "spool.sqlite"), free_port()
        deleted_at = 0.0

        def delete_the_file() -> None:
            nonlocal deleted_at
            time.sleep(1.5)  # the application runs a while
            for suffix in ("", "-wal", "-shm"):
                Path(spool + suffix).unlink(missing_ok=True)
            deleted_at = time.time()
            time.sleep(1.5)  # and on, without its file

        killed_at, made = _record_until_killed(
            Path(tmp), port, rate, spool, meanwhile=delete_the_file
        )
        received = _restart_with_the_receiver_up(Path(tmp), port, spool)
    print(f"{rate:g} records/s, spool on, no receiver; the spool file deleted, then SIGKILL:")
    bands = [
        ("made before the deletion", 0.0, deleted_at),
        ("made after it, >= 200 ms before the kill", deleted_at, killed_at - 0.2),
        ("made in the last 200 ms", killed_at - 0.2, float("inf")),
    ]
    for label, low, high in bands:
        band = [i for i, at in made if low <= float(at) < high]
        delivered = sum(i in received for i in band)
        print(f"  {label:<44}{len(band):>7} made{delivered:>7} delivered")


def _exit_time(code: str, records: int, endpoint: str) -> float:
    environment = _clean_environment(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(records)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    assert process.stdout is not None
    last_record = float(process.stdout.readline())
    process.wait()
    return time.time() - last_record


def exit_times(records: int) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(1024)  # takes connections, never answers
    silent = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
    print(f"exit with {records} records queued and no shutdown() call (seconds)")
    print(f"{'endpoint':<34}{'SDK log pipeline':>18}{'otel-feedback':>15}{'ratio':>8}")
    for label, endpoint in (
        ("down (connection refused)", refused),
        ("accepts, never answers", silent),
    ):
        sdk = _exit_time(SDK_EXIT_APP, records, endpoint)
        ours = _exit_time(OUR_EXIT_APP, records, endpoint)
        print(f"{label:<34}{sdk:>18.1f}{ours:>15.1f}{ours / sdk:>8.2f}")
    blackhole.close()


def burst(records: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ids, port = Path(tmp) / "received.txt", free_port()
        receiver = start_receiver(RECEIVER, port, str(ids))
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", BURST_APP, str(records)],
            check=True,
            env=_clean_environment(
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_TRACES_EXPORTER="none",
            ),
        )
        elapsed = time.monotonic() - started
        receiver.send_signal(signal.SIGKILL)
        receiver.wait()
        received = set(ids.read_text().split()) if ids.exists() else set()
    print(f"burst of {records} records, default setup, normal exit: {len(received)} delivered")
    print(f"(process ran {elapsed:.1f} s in all)")


def outage(records: int, down_for: float, spool: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ids, port = Path(tmp) / "received.txt", free_port()
        app = subprocess.Popen(
            [
                sys.executable,
                "-c",
                OUTAGE_APP,
                str(port),
                str(records),
                str(Path(tmp) / "spool.sqlite") if spool else "",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_clean_environment(),
        )
        assert app.stdout is not None
        assert app.stdout.readline().strip() == "made"
        time.sleep(down_for)  # the outage
        receiver = start_receiver(RECEIVER, port, str(ids))
        lines = app.stdout.read().splitlines()
        app.wait()
        receiver.send_signal(signal.SIGKILL)
        receiver.wait()
        received = set(ids.read_text().split()) if ids.exists() else set()
    mode = "spool on" if spool else "no spool"
    print(f"{records} records made with the endpoint down, back after {down_for:g} s ({mode}):")
    print(f"  undelivered per second after: {', '.join(x.split()[1] for x in lines[:-1])}")
    print(f"  delivered {len(received)} of {records}; {lines[-1]}")


def full_spool(records: int) -> None:
    # In a process of its own, like the other modes, so that PYTHONPATH picks the package
    # measured (this script's directory puts the repository first on its own path).
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-c", FULL_SPOOL_APP, str(records), str(Path(tmp) / "s.sqlite")],
            check=True,
            env=_clean_environment(),
        )


def phoenix_404(records: int, watch: float) -> None:
    import re
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.sdk.trace import TracerProvider

    from otel_feedback import FeedbackSpanProcessor, PhoenixFeedbackExporter, record_feedback

    requests = [0]

    class NotIngested(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            requests[0] += 1
            missing = sorted(set(re.findall(r'"span_id": "([0-9a-f]{16})"', body)))
            detail = f"Spans with IDs {', '.join(missing)} do not exist."
            answer = json.dumps({"detail": detail}).encode()
            self.send_response(404)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotIngested)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    processor = FeedbackSpanProcessor(
        PhoenixFeedbackExporter(endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("phoenix404")
    for i in range(records):
        with tracer.start_as_current_span("answer"):
            record_feedback("user_rating", score=i % 2)
    processor.force_flush(int(watch * 1000))  # Phoenix never ingests them: this times out
    made = requests[0]
    started = time.monotonic()
    processor.shutdown()
    took = time.monotonic() - started
    server.shutdown()
    stats = processor.stats()
    print(f"{records} records, Phoenix answering 404 for {watch:g} s: {made} HTTP requests")
    print(f"shutdown() took {took:.1f} s; then {stats.dropped}")


def main() -> None:
    modes = ("crash", "exit", "burst", "outage", "phoenix404", "fullspool", "deleted", "receiver")
    mode = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in modes else "receiver"
    parser = argparse.ArgumentParser(description=__doc__)
    if mode == "crash":
        parser.add_argument("--kills", type=int, default=3)
        parser.add_argument("--rate", type=float, default=500)
        arguments = parser.parse_args()
        crash(arguments.kills, arguments.rate)
        return
    if mode == "exit":
        parser.add_argument("--records", type=int, default=100)
        exit_times(parser.parse_args().records)
        return
    if mode == "burst":
        parser.add_argument("--records", type=int, default=10_000)
        burst(parser.parse_args().records)
        return
    if mode == "deleted":
        parser.add_argument("--rate", type=float, default=500)
        deleted(parser.parse_args().rate)
        return
    if mode == "fullspool":
        parser.add_argument("--records", type=int, default=120_000)
        full_spool(parser.parse_args().records)
        return
    if mode == "phoenix404":
        parser.add_argument("--records", type=int, default=500)
        parser.add_argument("--watch", type=float, default=10.0)
        arguments = parser.parse_args()
        phoenix_404(arguments.records, arguments.watch)
        return
    if mode == "outage":
        parser.add_argument("--records", type=int, default=6000)
        parser.add_argument("--down-for", type=float, default=2.0)
        parser.add_argument("--no-spool", action="store_true")
        arguments = parser.parse_args()
        outage(arguments.records, arguments.down_for, not arguments.no_spool)
        return
    receiver_mode()


def receiver_mode() -> None:
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
