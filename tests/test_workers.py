"""Workers of every start method deliver their records before they end.

``multiprocessing`` workers end with ``os._exit`` (no atexit hook runs), ``spawn`` and
``forkserver`` workers start from nothing (Python 3.14 makes forkserver the default on Linux,
spawn is macOS's), and ``with Pool() as pool`` ends its workers with SIGTERM. In each case a
processor made inside the worker, or inherited from the parent, delivers what the worker
recorded.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.otlp_receiver import OTLPReceiver

REPO = Path(__file__).parent.parent
METHODS = [
    m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()
]

# Each worker makes its own processor (OTLP to the receiver), records COUNT records and
# returns without shutdown(); the parent runs 4 such tasks in the way ``how`` says.
APP = """
import multiprocessing, sys
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, OTLPFeedbackExporter, record_feedback

COUNT = 25

def work(task):
    provider = TracerProvider()
    provider.add_span_processor(FeedbackSpanProcessor(OTLPFeedbackExporter(endpoint=ENDPOINT)))
    with provider.get_tracer("worker").start_as_current_span("task"):
        for i in range(COUNT):
            record_feedback("k", score=i, comment=f"task {task}")
    return task

ENDPOINT = sys.argv[1]

if __name__ == "__main__":
    method, how = sys.argv[2], sys.argv[3]
    context = multiprocessing.get_context(method)
    if how == "process":
        workers = [context.Process(target=work, args=(t,)) for t in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
            assert worker.exitcode == 0, worker.exitcode
    elif how == "pool":
        pool = context.Pool(2)
        assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
        pool.close()
        pool.join()
    else:  # the context manager ends the workers with SIGTERM (Pool.terminate)
        with context.Pool(2) as pool:
            assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
"""


@pytest.mark.parametrize("how", ["process", "pool", "pool with"])
@pytest.mark.parametrize("method", METHODS)
def test_workers_deliver_before_they_end(
    receiver: OTLPReceiver, tmp_path: Path, method: str, how: str
) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, str(script), receiver.http_endpoint + "/v1/logs", method, how],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    comments = sorted(log.feedback.comment or "" for log in receiver.logs())
    assert comments == sorted(f"task {t}" for t in range(4) for _ in range(25)), done.stderr
