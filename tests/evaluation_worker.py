"""Applications with online evaluation that run worker processes, for the worker tests.

Each entry point runs as a process of its own (``python -c "...; main()"``) and exits without
calling ``shutdown()``: what tests/test_evaluation_workers.py asserts is what reached the OTLP
receiver. Spawn and forkserver workers import this module by name, so its functions are what
they run. Every span is named after the process role and task that made it, and the
``judged`` evaluator says in its comment which process judged it.

Every wait is bounded: a worker that hangs makes the application exit with an error.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_feedback import (
    FeedbackSpanProcessor,
    JudgedRun,
    OnlineEvaluationProcessor,
    OTLPFeedbackExporter,
)

COUNT = 10
"""Spans per task."""
TASKS = 4
PARENT_SPANS = 20
JOIN_TIMEOUT_S = 90.0
ALARM_S = 60
JUDGING_S = 0.005
"""How long one evaluation takes."""
"""A forked child that runs longer is ended by its alarm: it hung."""
LLM_ATTRIBUTES = {
    "openinference.span.kind": "LLM",
    "input.value": "Where is my parcel?",
    "output.value": "It ships tomorrow.",
}


def judged(run: JudgedRun) -> dict[str, Any]:
    """A plain evaluator; its comment names the span it judged and the process that judged it."""
    time.sleep(JUDGING_S)  # the evaluator's own work: evaluations still run as tasks end
    return {"key": "judged", "score": 1, "comment": f"{run.name} by {os.getpid()}"}


async def tone(run: JudgedRun) -> dict[str, Any]:
    """An ``async`` evaluator, run on the evaluation loop."""
    await asyncio.sleep(JUDGING_S)
    return {"key": "tone", "score": 0.5}


# --- the slow evaluator of the fork-while-judging application ----------------------------

slow_started = threading.Event()
slow_go_on = threading.Event()
_slow_in: list[int] = []  # the pid whose evaluations of "slow" block (the parent's)


def slow(run: JudgedRun) -> dict[str, Any]:
    """In the parent, blocks until released; in a forked child, returns at once."""
    if _slow_in and os.getpid() == _slow_in[0]:
        slow_started.set()
        slow_go_on.wait(60)
    return {"key": "slow", "score": 1, "comment": f"{run.name} by {os.getpid()}"}


# --- set-up ------------------------------------------------------------------------------

_setup: dict[str, Any] = {}


def setup(endpoint: str, *, with_slow: bool = False) -> None:
    """The global provider: spans over OTLP, feedback over OTLP, online evaluation."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{endpoint}/v1/traces")))
    feedback = FeedbackSpanProcessor(OTLPFeedbackExporter(endpoint=f"{endpoint}/v1/logs"))
    provider.add_span_processor(feedback)
    evaluators: dict[str, Any] = {"judged": judged, "tone": tone}
    if with_slow:
        evaluators["slow"] = slow
    evaluation = OnlineEvaluationProcessor(evaluators, tracer_provider=provider)
    provider.add_span_processor(evaluation)
    trace.set_tracer_provider(provider)
    _setup.update(provider=provider, feedback=feedback, evaluation=evaluation)


def spans(prefix: str, count: int) -> None:
    """``count`` ended spans named ``<prefix> span <i>``, on the global provider."""
    tracer = trace.get_tracer("worker")
    for i in range(count):
        with tracer.start_as_current_span(f"{prefix} span {i}", attributes=LLM_ATTRIBUTES):
            pass


def work(task: int) -> int:
    """A task of a worker whose process has the processors already (set up, or inherited)."""
    spans(f"task {task}", COUNT)
    return task


def set_up_and_work(endpoint: str, task: int) -> None:
    """A Process target that sets up its own processors, then works, then returns."""
    setup(endpoint)
    work(task)


def _run_workers(method: str, how: str, endpoint: str | None) -> None:
    """TASKS tasks in workers of ``method``, as ``how`` says; ``endpoint``: they set up."""
    # Typed as the start methods' contexts are (BaseContext declares no Process).
    context: Any = multiprocessing.get_context(method)
    if how == "process":
        if endpoint is None:
            workers = [context.Process(target=work, args=(t,)) for t in range(TASKS)]
        else:
            workers = [
                context.Process(target=set_up_and_work, args=(endpoint, t)) for t in range(TASKS)
            ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(JOIN_TIMEOUT_S)
            if worker.exitcode != 0:
                worker.kill()
                sys.exit(f"a worker ended with {worker.exitcode} (None: it hung)")
        return
    options: dict[str, Any] = {}
    if endpoint is not None:
        options = {"initializer": setup, "initargs": (endpoint,)}
    pool = context.Pool(2, **options)
    try:
        done = pool.map_async(work, range(TASKS)).get(JOIN_TIMEOUT_S)
        assert sorted(done) == list(range(TASKS)), done
        if how == "pool":
            pool.close()
            joined = threading.Thread(target=pool.join, daemon=True)
            joined.start()
            joined.join(JOIN_TIMEOUT_S)
            if joined.is_alive():
                sys.exit("the pool's workers did not end (hung)")
    finally:
        pool.terminate()  # "pool with": what ``with Pool() as pool`` does (SIGTERM)


def workers_main() -> None:
    """argv: endpoint, start method, how; each worker sets up its own processors.

    Prints its pid.
    """
    endpoint, method, how = sys.argv[1:4]
    print(os.getpid(), flush=True)
    _run_workers(method, how, endpoint)


def forked_main() -> None:
    """argv: endpoint, how: the parent sets up and judges its own spans, then forks workers.

    Prints the parent's pid. The parent's spans are still being judged as the workers fork.
    """
    endpoint, how = sys.argv[1:3]
    print(os.getpid(), flush=True)
    setup(endpoint)
    spans("parent", PARENT_SPANS)
    _run_workers("fork", how, None)
    spans("parent after", PARENT_SPANS)


def _judge_own_spans_and_flush(name: str) -> None:
    """In a forked child: judge spans of its own, then exit 0 if all was delivered."""
    spans(name, COUNT)
    feedback: FeedbackSpanProcessor = _setup["feedback"]
    evaluation: OnlineEvaluationProcessor = _setup["evaluation"]
    delivered = feedback.force_flush(30_000)  # the evaluations end, their results go out
    # Then the spans, evaluator spans included: this child ends with os._exit.
    delivered = _setup["provider"].force_flush(30_000) and delivered
    stats = evaluation.stats()
    judged_all = stats.queued == COUNT and stats.succeeded == COUNT * len(evaluation.evaluators)
    if not (delivered and judged_all):
        print(f"{name}: delivered {delivered}, {stats}", file=sys.stderr, flush=True)
        os._exit(3)


def fork_while_judging_main() -> None:
    """argv: endpoint, how ("os.fork" or "process"): fork while the parent's judge is blocked.

    The parent's "slow" evaluations hold their workers while it forks; the child judges
    spans of its own (its "slow" returns at once) and flushes, within a bounded time.
    Prints the parent's pid.
    """
    endpoint, how = sys.argv[1:3]
    print(os.getpid(), flush=True)
    _slow_in.append(os.getpid())
    setup(endpoint, with_slow=True)
    spans("parent", 3)
    if not slow_started.wait(30):
        sys.exit("the slow evaluator never started")
    for child in range(2):
        name = f"child {child}"
        code: int | None
        if how == "os.fork":
            pid = os.fork()
            if pid == 0:
                signal.alarm(ALARM_S)
                _judge_own_spans_and_flush(name)
                os._exit(0)
            code = _wait_for(pid)
        else:
            context = multiprocessing.get_context("fork")
            process = context.Process(target=_judge_own_spans_and_flush, args=(name,))
            process.start()
            process.join(JOIN_TIMEOUT_S)
            code = process.exitcode
            if code is None:
                process.kill()
        if code != 0:
            sys.exit(f"{name} ended with {code} (None or -14: it hung)")
    slow_go_on.set()  # the parent's evaluations end now: their results are delivered at exit


def _wait_for(pid: int) -> int:
    """The exit code of the forked child ``pid`` (-14: its alarm ended it, it hung)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def fork_during_a_burst_main() -> None:
    """argv: endpoint, rounds: fork at random moments while fast evaluations run.

    Each round judges a burst of spans on a thread of its own and forks during it; every
    child judges spans of its own and flushes. Prints the parent's pid.
    """
    endpoint, rounds = sys.argv[1], int(sys.argv[2])
    print(os.getpid(), flush=True)
    setup(endpoint)
    for round_ in range(rounds):
        burst = threading.Thread(target=spans, args=(f"burst {round_}", 50))
        burst.start()
        time.sleep(random.random() * 0.02)  # a random moment of the burst
        pid = os.fork()
        if pid == 0:
            signal.alarm(ALARM_S)
            _judge_own_spans_and_flush(f"child {round_}")
            os._exit(0)
        burst.join(JOIN_TIMEOUT_S)
        code = _wait_for(pid)
        if code != 0:
            sys.exit(f"child {round_} ended with {code} (-14: it hung)")
