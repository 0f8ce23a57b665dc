"""Online evaluation in worker processes of every start method, and across forks.

A worker that judges its spans and ends without ``shutdown()`` (``multiprocessing`` workers
end with ``os._exit``, ``with Pool()`` with SIGTERM) still delivers every result, and its
evaluator spans. Processors made before a fork judge the child's own spans in the child and
the parent's in the parent, each once; a fork while the parent's judge is busy never hangs
the child. The applications are in tests/evaluation_worker.py; their spans and feedback go
to the test's OTLP receiver.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_feedback._ids import evaluation_feedback_id
from tests import evaluation_worker as app
from tests.otlp_receiver import OTLPReceiver, ReceivedLog, ReceivedSpan

REPO = Path(__file__).parent.parent
METHODS = [
    m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()
]
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run(main: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``tests.evaluation_worker.<main>()`` in a process of its own, with ``args`` as argv."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    environment["PYTHONPATH"] = str(REPO)
    environment["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    done = subprocess.run(
        [sys.executable, "-c", f"from tests.evaluation_worker import {main}; {main}()", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def judged_spans(receiver: OTLPReceiver) -> dict[int, ReceivedSpan]:
    """The application's spans (not the evaluator spans), by span id; each arrived once."""
    spans = [s for s in receiver.spans() if not s.span.name.startswith("evaluate ")]
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans), "a span arrived twice"
    return by_id


def assert_each_span_judged_once(
    receiver: OTLPReceiver, names: set[str], evaluators: tuple[str, ...] = ("judged", "tone")
) -> dict[str, ReceivedLog]:
    """Every span named in ``names`` has one result per evaluator, and one evaluator span each.

    Returns the ``judged`` result of each span, by span name.
    """
    spans = judged_spans(receiver)
    assert {s.span.name for s in spans.values()} == names
    logs = receiver.logs()
    ids = [str(log.feedback.id) for log in logs]
    assert len(ids) == len(set(ids)), "a result arrived twice"
    keys = collections.Counter((log.span_id, log.feedback.key) for log in logs)
    assert keys == collections.Counter({(s, k): 1 for s in spans for k in evaluators})
    for log in logs:
        assert log.trace_id == spans[log.span_id].trace_id
        # The id judging this span with this evaluator gives, wherever it is judged.
        assert log.feedback.id == evaluation_feedback_id(
            log.feedback.key, log.feedback.key, log.trace_id, log.span_id
        )
        source = log.feedback.feedback_source
        assert source is not None
        assert source.type == "model"
    # One evaluator span per evaluation, under the span it judged, each once.
    evaluations = [s for s in receiver.spans() if s.span.name.startswith("evaluate ")]
    assert len({s.span_id for s in evaluations}) == len(evaluations)
    judged_by = collections.Counter(
        (spans[s.parent_span_id].span.name if s.parent_span_id in spans else "?", s.span.name)
        for s in evaluations
    )
    expected = collections.Counter(
        {(s.span.name, f"evaluate {k}"): 1 for s in spans.values() for k in evaluators}
    )
    assert judged_by == expected, (
        f"evaluator spans missing: {sorted(expected - judged_by)}, "
        f"unexpected: {sorted(judged_by - expected, key=str)}"
    )
    return {spans[log.span_id].span.name: log for log in logs if log.feedback.key == "judged"}


def judge_of(log: ReceivedLog) -> str:
    """The pid of the process whose ``judged`` evaluator gave ``log``."""
    return (log.feedback.comment or "").rpartition(" by ")[2]


def task_names() -> set[str]:
    return {f"task {t} span {i}" for t in range(app.TASKS) for i in range(app.COUNT)}


@pytest.mark.parametrize("how", ["process", "pool", "pool with"])
@pytest.mark.parametrize("method", METHODS)
def test_workers_deliver_every_result_and_evaluator_span_before_they_end(
    receiver: OTLPReceiver, method: str, how: str
) -> None:
    done = run("workers_main", receiver.http_endpoint, method, how)
    parent = done.stdout.split()[0]
    judged = assert_each_span_judged_once(receiver, task_names())
    # Each task's spans were judged in the worker that made them.
    for task in range(app.TASKS):
        judges = {judge_of(judged[f"task {task} span {i}"]) for i in range(app.COUNT)}
        assert len(judges) == 1
        assert judges != {parent}


@needs_fork
@pytest.mark.parametrize("how", ["process", "pool", "pool with"])
def test_processors_made_before_a_fork_judge_each_span_in_the_process_that_made_it(
    receiver: OTLPReceiver, how: str
) -> None:
    done = run("forked_main", receiver.http_endpoint, how)
    parent = done.stdout.split()[0]
    names = task_names() | {
        f"{who} span {i}" for who in ("parent", "parent after") for i in range(app.PARENT_SPANS)
    }
    judged = assert_each_span_judged_once(receiver, names)
    for name, log in judged.items():
        judge = judge_of(log)
        assert log.feedback.comment == f"{name} by {judge}"
        # The parent judged its own spans; the workers theirs, never the parent's.
        assert (judge == parent) == name.startswith("parent"), (name, judge, parent)


@needs_fork
@pytest.mark.parametrize("how", ["os.fork", "process"])
def test_a_fork_while_the_parents_judge_is_busy_does_not_hang_the_child(
    receiver: OTLPReceiver, how: str
) -> None:
    done = run("fork_while_judging_main", receiver.http_endpoint, how)
    parent = done.stdout.split()[0]
    names = {f"parent span {i}" for i in range(3)} | {
        f"child {c} span {i}" for c in range(2) for i in range(app.COUNT)
    }
    judged = assert_each_span_judged_once(receiver, names, ("judged", "tone", "slow"))
    for name, log in judged.items():
        judge = judge_of(log)
        assert (judge == parent) == name.startswith("parent"), (name, judge, parent)
    # The parent's blocked evaluations ended after the forks, and were delivered at its exit.
    slow = [log.feedback.comment or "" for log in receiver.logs() if log.feedback.key == "slow"]
    assert sorted(c for c in slow if c.endswith(f" by {parent}")) == [
        f"parent span {i} by {parent}" for i in range(3)
    ]


@needs_fork
def test_forks_at_random_moments_of_a_judging_burst_lose_and_repeat_nothing(
    receiver: OTLPReceiver,
) -> None:
    rounds = 8
    done = run("fork_during_a_burst_main", receiver.http_endpoint, str(rounds))
    parent = done.stdout.split()[0]
    names = {f"burst {r} span {i}" for r in range(rounds) for i in range(50)} | {
        f"child {r} span {i}" for r in range(rounds) for i in range(app.COUNT)
    }
    judged = assert_each_span_judged_once(receiver, names)
    for name, log in judged.items():
        judge = judge_of(log)
        assert (judge == parent) == name.startswith("burst"), (name, judge, parent)
