"""The evaluation runner: a bounded queue of runs, a bounded number of evaluations at once.

One daemon thread runs an asyncio loop that takes runs from the queue and starts one
evaluation per evaluator, at most ``max_workers`` at once (how each is called, and given up
past its timeout: :mod:`otel_feedback._evaluation.calling`). An evaluation past its timeout
that still runs keeps its worker; with every worker so held, runs are skipped rather than
waited for, and what the queue cannot hold is counted as skipped. Nothing grows without bound.

The threads start on first use, and a forked child starts afresh with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from opentelemetry import trace

from otel_feedback._evaluation.calling import (
    Pool,
    Raised,
    Slots,
    TimedOut,
    in_context,
    settle,
    with_span,
    within,
)
from otel_feedback._evaluation.evaluators import Evaluator
from otel_feedback._evaluation.judged import JudgedRun
from otel_feedback._evaluation.judging import Judging, describe
from otel_feedback._evaluation.stats import SHUT_DOWN, UNFINISHED, EvaluationStats, Tally
from otel_feedback._log import logger
from otel_feedback._recording.recorded import RecordedFeedback

__all__ = ["Runner"]

_Item = TypeVar("_Item")
_DONE = object()
# One wait at a time at most this long: a longer timeout overflows the lock's.
_LONGEST_WAIT_S = 3600.0


class Runner(Generic[_Item]):
    """Evaluates the runs put to it in the background; see the module's docstring.

    ``to_run`` reads a queued item as a :class:`JudgedRun`, on the runner's thread (an ended
    span, online; a run already read, offline). ``local``: the judged spans were made in this
    process.
    """

    def __init__(
        self,
        evaluators: tuple[Evaluator, ...],
        *,
        to_run: Callable[[_Item], JudgedRun],
        tracer: Callable[[], trace.Tracer],
        max_queue_size: int,
        max_workers: int,
        timeout_s: float,
        local: bool,
        tally: Tally,
        on_record: Callable[[RecordedFeedback], None] | None = None,
    ) -> None:
        self._evaluators = evaluators
        self._to_run = to_run
        self._tracer = tracer
        self._max_queue_size = max_queue_size
        self._max_workers = max_workers
        self._timeout_s = timeout_s
        self._local = local
        self.tally = tally
        self._on_record = on_record
        self._reset()
        reset = weakref.WeakMethod(self._reset)
        os.register_at_fork(after_in_child=lambda: (m := reset()) and m())

    def _reset(self) -> None:
        # Also a forked child's start: the parent's threads are not in it, and the parent
        # evaluates the runs it queued.
        self._lock = threading.Lock()
        self._starting = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[_Item] = deque()
        self._accepted = 0  # runs queued so far
        self._finished = 0  # of those, runs whose every evaluation ended (or was given up)
        self._running = 0
        self._taking = False  # a run taken from the queue whose evaluations are starting
        self._idle = True
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: Slots | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._pool = Pool(self._max_workers)
        if hasattr(self, "tally"):
            self.tally.after_fork()

    # --- the application's side -------------------------------------------------------------

    def put(self, item: _Item, *, wait_s: float = 0.0) -> bool:
        """Queue ``item``; False (not counted here) when the queue stays full.

        ``wait_s``: how long to wait for room (offline evaluation reads no faster than it
        judges); 0, the default, never waits.
        """
        with self._lock:
            if self._closed:
                self.tally.skip(SHUT_DOWN)
                return True
            deadline = time.monotonic() + wait_s
            while len(self._queue) >= self._max_queue_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, _LONGEST_WAIT_S))
            self._queue.append(item)
            self._accepted += 1
            wake, self._idle = self._idle, False
        if self._thread is None:
            self._start()  # its loop takes what is queued when it starts
        elif wake:
            self._wake_up()
        return True

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # it stopped: it was shut down
                loop.call_soon_threadsafe(wake.set)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every run queued so far is judged; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target = self._accepted
            while self._finished < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, _LONGEST_WAIT_S))
        return True

    def shutdown(self, timeout_s: float) -> bool:
        """Stop taking runs, judge the queued ones within ``timeout_s``, count the rest."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        done = self.flush(timeout_s)
        with self._lock:
            # The queued runs, and the one taken but not started in full (waiting for a slot).
            left = len(self._queue) + self._taking
            self._queue.clear()
            unfinished = self._accepted - self._finished - left
            self._finished = self._accepted
            self._changed.notify_all()
        if left:
            self.tally.skip(UNFINISHED, left)
        if unfinished:
            logger.warning(
                "%d evaluation(s) still running at shutdown: their results may not be exported",
                unfinished,
            )
        self._wake_up()
        loop, slots = self._loop, self._slots
        if loop is not None and slots is not None:
            with contextlib.suppress(RuntimeError):  # the loop has stopped
                loop.call_soon_threadsafe(slots.close)
        self._pool.stop()
        self.tally.flush_log()
        return done

    def finished(self) -> int:
        """The runs judged (or given up) so far: what progress is measured by."""
        with self._lock:
            return self._finished

    def stats(self) -> EvaluationStats:
        """The counts so far."""
        with self._lock:
            queued, pending, running = self._accepted, len(self._queue), self._running
        return self.tally.snapshot(queued=queued, pending=pending, running=running)

    # --- the runner's thread ----------------------------------------------------------------

    def _start(self) -> None:
        with self._starting:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._serve, name="otel_feedback.evaluation", daemon=True
            )
            thread.start()
            self._thread = thread

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException:  # noqa: BLE001 - the background never raises into anything
            logger.exception("The evaluation runner stopped")
        try:
            # Evaluations that ignored their cancellation may still be pending: this daemon
            # thread runs them to their end (or the process's), then closes the loop.
            pending = asyncio.all_tasks(loop)
            if pending:
                loop.run_until_complete(asyncio.wait(pending))
            loop.close()
        except BaseException:  # noqa: BLE001 - the background never raises into anything
            logger.debug("The evaluation runner's loop did not close", exc_info=True)

    async def _main(self) -> None:
        assert self._wake is not None
        slots = self._slots = Slots(self._max_workers)
        tasks: set[asyncio.Task[None]] = set()
        while True:
            item = self._next()
            if item is _DONE:
                if self._closed:
                    # Evaluations still running end within their timeout.
                    if tasks:
                        await asyncio.wait(tasks, timeout=self._timeout_s)
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            try:
                run = self._to_run(item)
            except Exception as error:  # noqa: BLE001 - a run that cannot be read is skipped
                logger.warning("A span could not be read for evaluation: %s", describe(error))
                self._end_run(failed=len(self._evaluators))
                continue
            remaining = [len(self._evaluators)]
            for index, evaluator in enumerate(self._evaluators):
                if not await slots.take() or self._closed:
                    # Past the shutdown's deadline (with every slot held by an evaluation
                    # past its timeout that still runs, nothing could start); the shutdown
                    # counted this run as not evaluated.
                    remaining[0] -= len(self._evaluators) - index
                    if remaining[0] == 0:
                        self._end_run()
                    break
                task = asyncio.ensure_future(self._evaluate(evaluator, run, slots, remaining))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            with self._lock:
                self._taking = False

    def _next(self) -> Any:
        with self._lock:
            if self._queue and not self._closed:
                item = self._queue.popleft()
                self._taking = True  # until each of its evaluations has started
                self._changed.notify_all()
                return item
            self._idle = True
            return _DONE

    def _end_run(self, *, failed: int = 0) -> None:
        if failed:
            self.tally.add("failed", failed)
        with self._lock:
            self._finished += 1
            self._changed.notify_all()

    async def _evaluate(
        self, evaluator: Evaluator, run: JudgedRun, slots: Slots, remaining: list[int]
    ) -> None:
        with self._lock:
            self._running += 1
        judging: Judging | None = None
        outcome, made, held = "failed", 0, False
        try:
            judging = Judging(
                evaluator, run, self._tracer(), local=self._local, on_record=self._on_record
            )
            try:
                returned = await self._call(judging, slots)
            except TimedOut as timeout:
                held, outcome, made = True, "timed_out", 1
                judging.fail(f"timed out after {self._timeout_s:g} s")
                # Its thread (or coroutine) may still call its model: its spans stay the
                # judge's until it ends.
                forget = judging.forget
                timeout.running.add_done_callback(lambda _: forget())
            except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001 - its outcome
                # (A CancelledError here is the evaluator's own: this task is never cancelled.)
                raised = error.raised if isinstance(error, Raised) else error
                made = 1
                judging.fail(f"raised {describe(raised)}")
            else:
                made, valid = judging.finish(returned)
                outcome = "succeeded" if valid else "failed"
        except Exception:  # noqa: BLE001 - the background never raises into anything
            logger.exception("Evaluating a run with %r failed", evaluator.name)
        finally:
            if judging is not None:
                judging.abandon()
                if not held:
                    judging.forget()
            self.tally.add(outcome)
            if made:
                self.tally.add("results", made)
            if not held:
                slots.give()
            with self._lock:
                self._running -= 1
            remaining[0] -= 1
            if remaining[0] == 0:
                self._end_run()

    async def _call(self, judging: Judging, slots: Slots) -> Any:
        """What the evaluator returned.

        Raises:
            TimedOut: it took longer than the timeout; its slot stays taken until it ends
                (a thread cannot be stopped; a coroutine may ignore its cancellation).
        """
        evaluator, run = judging.evaluator, judging.run
        current = trace.set_span_in_context(judging.span)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        if evaluator.is_async:
            coroutine = in_context(current, evaluator.function, run)
            return await within(asyncio.ensure_future(coroutine), self._timeout_s, slots)
        answer: asyncio.Future[Any] = loop.create_future()

        def done(ok: bool, value: Any) -> None:
            # A thread given up on may return after the runner's loop closed: nobody waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, answer, ok, value)

        # The evaluator runs with its span current, in a copy of no one's context.
        context = contextvars.Context()
        self._pool.run(lambda: context.run(with_span, current, evaluator.function, run), done)
        returned = await within(answer, self._timeout_s, slots)
        if inspect.isawaitable(returned):  # a plain function that returned a coroutine
            awaited = asyncio.ensure_future(in_context(current, lambda _: returned, run))
            returned = await within(awaited, max(0.0, deadline - loop.time()), slots)
        return returned
