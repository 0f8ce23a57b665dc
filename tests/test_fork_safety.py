"""Fork at any moment: parent and child each deliver all of their own records.

gunicorn and uWSGI with preloading, Celery's prefork pool and ``multiprocessing``'s fork
start fork a process whose background threads may be anywhere: importing a module, in the
middle of a batch, holding a lock. A child must never inherit a lock held forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.otlp_receiver import OTLPReceiver

REPO = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# Records a burst on a thread of its own and forks while it runs, at a random moment, ROUNDS
# times; every process (parent and each child) prints the ids it recorded, one per line,
# then "flushed <bool>" after its processor's force_flush. A child that hangs is killed by
# its alarm (exit 14).
FORK_DURING_A_BURST = """
import os, random, signal, sys, threading, time
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, JsonlFeedbackExporter, record_feedback

out, rounds, burst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
provider = TracerProvider()
processor = FeedbackSpanProcessor(
    JsonlFeedbackExporter(out), schedule_delay_millis=1, max_export_batch_size=7
)
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")
mine = []

def record(count):
    ids = []
    for i in range(count):
        with tracer.start_as_current_span("run"):
            ids.append(str(record_feedback("k", score=i).id))
    return ids

def report(ids, name):
    flushed = processor.force_flush(20_000)
    with open(f"{out}.{name}.ids", "w") as f:
        f.write("\\n".join(ids) + f"\\nflushed {flushed}\\n")

for round_ in range(rounds):
    done = []
    burst_thread = threading.Thread(target=lambda: done.extend(record(burst)))
    burst_thread.start()
    time.sleep(random.random() * 0.01)
    pid = os.fork()
    if pid == 0:
        signal.alarm(25)
        report(record(50), f"child{round_}")
        processor.shutdown()
        os._exit(0)
    burst_thread.join()
    mine += done
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"child {round_} ended with {os.waitstatus_to_exitcode(status)}", file=sys.stderr)
        sys.exit(1)
report(mine, "parent")
processor.shutdown()
"""

# A fresh process: its background threads use modules for the first time while it forks
# right after a burst (the moment a lazily imported module's lock would be held).
FORK_RIGHT_AFTER_THE_FIRST_RECORDS = """
import os, signal, sys
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

endpoint = sys.argv[1]
provider = TracerProvider()
processor = FeedbackSpanProcessor(OTLPFeedbackExporter(endpoint=endpoint, timeout=5))
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")
with tracer.start_as_current_span("run"):
    for i in range(1000):
        record_feedback("k", score=i)
processor.force_flush(0)  # wakes the intake: it starts converting now
pid = os.fork()
if pid == 0:
    signal.alarm(25)
    with tracer.start_as_current_span("child"):
        for i in range(100):
            record_feedback("child", score=i)
    delivered = processor.force_flush(20_000)
    stats = processor.stats()
    ok = delivered and stats.received == 100 and stats.exported["OTLPFeedbackExporter"] == 100
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code else (0 if processor.force_flush(20_000) else 4))
"""


def _environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = str(REPO)
    return environment


def test_a_fork_at_random_moments_during_a_burst_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "feedback.jsonl"
    rounds = 12
    done = subprocess.run(
        [sys.executable, "-c", FORK_DURING_A_BURST, str(out), str(rounds), "300"],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    exported = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    for name in ["parent", *(f"child{r}" for r in range(rounds))]:
        *ids, flushed = (tmp_path / f"feedback.jsonl.{name}.ids").read_text().splitlines()
        assert flushed == "flushed True", name
        assert set(ids) <= set(exported), name
    # Each record once: a child never sends its parent's records.
    assert len(exported) == len(set(exported)) == rounds * 300 + rounds * 50


@pytest.mark.parametrize("attempt", range(6))
def test_a_child_forked_while_the_threads_start_work_delivers(
    receiver: OTLPReceiver, attempt: int
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FORK_RIGHT_AFTER_THE_FIRST_RECORDS,
            receiver.http_endpoint + "/v1/logs",
        ],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (attempt, done.stderr[-3000:])


# Which modules the background threads import once the processor exists: none may be left
# for them (see the module docstring).
IMPORTS_IN_BACKGROUND = """
import sys, threading
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import (
    ConsoleFeedbackExporter, FeedbackSpanProcessor, InMemoryFeedbackExporter,
    JsonlFeedbackExporter, OTLPFeedbackExporter, record_feedback,
)

endpoint, jsonl, spool = sys.argv[1:4]
exporters = [
    InMemoryFeedbackExporter(),
    JsonlFeedbackExporter(jsonl),
    OTLPFeedbackExporter(endpoint=endpoint, timeout=5),
    ConsoleFeedbackExporter(out=open("/dev/null", "w")),
]
imported = []

def hook(event, args):
    if event == "import" and threading.current_thread().name.startswith("otel_feedback"):
        imported.append(args[0])

provider = TracerProvider()
processor = FeedbackSpanProcessor(exporters, spool_path=spool)
provider.add_span_processor(processor)
sys.addaudithook(hook)
with provider.get_tracer("app").start_as_current_span("run"):
    for i in range(20):
        record_feedback("k", score=i, comment="\u00e9t\u00e9", value={"a": [1, 2]})
assert processor.force_flush(20_000)
processor.shutdown()
print(sorted(set(imported)))
"""


@pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
def test_background_threads_import_nothing(
    receiver: OTLPReceiver, tmp_path: Path, spool: bool
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORTS_IN_BACKGROUND,
            receiver.http_endpoint + "/v1/logs",
            str(tmp_path / "out.jsonl"),
            str(tmp_path / "spool.sqlite") if spool else "",
        ],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout
