"""The evaluation runner: a bounded queue of runs, a bounded number of evaluations at once.

One daemon thread runs an asyncio loop that takes runs from the queue and starts one
evaluation per evaluator, at most ``max_workers`` at once: ``async`` evaluators run on the
loop, plain ones on a pool of ``max_workers`` daemon threads. Each evaluation is given
``timeout_s``; one that takes longer is recorded as timed out at once. An ``async`` one is
cancelled; a plain function cannot be stopped, so its thread stays taken, and its slot too,
until it returns: evaluators that hang leave fewer slots, runs wait in the queue, and what the
queue cannot hold is counted as skipped. Nothing grows without bound.

The threads are daemons and start on first use: a hung evaluator never holds up the
process's exit (``concurrent.futures`` pools are joined at exit), and a forked child starts
afresh with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_feedback._evaluation.evaluators import Evaluator
from otel_feedback._evaluation.judged import JudgedRun
from otel_feedback._evaluation.judging import Judging, describe
from otel_feedback._evaluation.stats import HUNG, SHUT_DOWN, UNFINISHED, EvaluationStats, Tally
from otel_feedback._log import logger
from otel_feedback._recording.recorded import RecordedFeedback

__all__ = ["Runner"]

_Item = TypeVar("_Item")
_DONE = object()
# One wait at a time at most this long: a longer timeout overflows the lock's.
_LONGEST_WAIT_S = 3600.0


class _Pool:
    """``size`` daemon threads running plain evaluators (see the module's docstring)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def run(self, function: Callable[[], Any], done: Callable[[bool, Any], None]) -> None:
        if len(self._threads) < self._size:
            thread = threading.Thread(
                target=self._serve, name="otel_feedback.evaluator", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._work.put((function, done))

    def _serve(self) -> None:
        while True:
            job = self._work.get()
            if job is _DONE:
                return
            function, done = job
            try:
                outcome: tuple[bool, Any] = (True, function())
            except Exception as error:  # noqa: BLE001 - an evaluator's error is its outcome
                outcome = (False, error)
            except BaseException as error:  # noqa: BLE001 - so is SystemExit, KeyboardInterrupt
                # Set on the runner's future as they are, they would stop its event loop.
                outcome = (False, _Raised(error))
            done(*outcome)

    def stop(self) -> None:
        for _ in self._threads:
            self._work.put(_DONE)


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
        self._idle = True
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._pool = _Pool(self._max_workers)
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
            left = len(self._queue)
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
        slots = _Slots(self._max_workers)
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
                if not await slots.take():
                    # Every slot is held by an evaluation past its timeout that still runs:
                    # nothing can start; the run is skipped rather than waited for.
                    self.tally.skip(HUNG)
                    remaining[0] -= len(self._evaluators) - index
                    if remaining[0] == 0:
                        self._end_run()
                    break
                task = asyncio.ensure_future(self._evaluate(evaluator, run, slots, remaining))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    def _next(self) -> Any:
        with self._lock:
            if self._queue:
                item = self._queue.popleft()
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
        self, evaluator: Evaluator, run: JudgedRun, slots: _Slots, remaining: list[int]
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
            except _TimedOut:
                held, outcome, made = True, "timed_out", 1
                judging.fail(f"timed out after {self._timeout_s:g} s")
            except Exception as error:  # noqa: BLE001 - an evaluator's error is its outcome
                raised = error.raised if isinstance(error, _Raised) else error
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

    async def _call(self, judging: Judging, slots: _Slots) -> Any:
        """What the evaluator returned.

        Raises:
            _TimedOut: it took longer than the timeout; its slot stays taken until it ends
                (a thread cannot be stopped; a coroutine may ignore its cancellation).
        """
        evaluator, run = judging.evaluator, judging.run
        current = trace.set_span_in_context(judging.span)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        if evaluator.is_async:
            coroutine = _in_context(current, evaluator.function, run)
            return await _within(asyncio.ensure_future(coroutine), self._timeout_s, slots)
        answer: asyncio.Future[Any] = loop.create_future()

        def done(ok: bool, value: Any) -> None:
            loop.call_soon_threadsafe(_settle, answer, ok, value)

        # The evaluator runs with its span current, in a copy of no one's context.
        context = contextvars.Context()
        self._pool.run(lambda: context.run(_with_span, current, evaluator.function, run), done)
        returned = await _within(answer, self._timeout_s, slots)
        if inspect.isawaitable(returned):  # a plain function that returned a coroutine
            awaited = asyncio.ensure_future(_in_context(current, lambda _: returned, run))
            returned = await _within(awaited, max(0.0, deadline - loop.time()), slots)
        return returned


class _Slots:
    """Evaluations at once; used on the runner's event loop only.

    An evaluation past its timeout that still runs (a thread cannot be stopped; a coroutine
    may ignore its cancellation) keeps its slot until it ends: it is "stuck". When every slot
    is stuck, :meth:`take` says so at once rather than wait for what may never come.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.stuck = 0
        self._changed = asyncio.Event()

    async def take(self) -> bool:
        """Take a slot when one is free; False when every slot is stuck."""
        while self.free == 0:
            if self.stuck >= self.size:
                return False
            self._changed.clear()
            await self._changed.wait()
        self.free -= 1
        return True

    def give(self) -> None:
        self.free += 1
        self._changed.set()

    def hold_until(self, running: asyncio.Future[Any]) -> None:
        """The evaluation timed out but ``running`` goes on: its slot is given when it ends."""
        self.stuck += 1
        self._changed.set()

        def ended(future: asyncio.Future[Any]) -> None:
            if not future.cancelled():
                future.exception()  # read, so that asyncio does not log it as never read
            self.stuck -= 1
            self.give()

        running.add_done_callback(ended)


async def _within(running: asyncio.Future[Any], timeout_s: float, slots: _Slots) -> Any:
    """The result of ``running`` if it ends within ``timeout_s``; else it is left to end."""
    if timeout_s > 0:
        await asyncio.wait({running}, timeout=timeout_s)
    if not running.done():
        if isinstance(running, asyncio.Task):
            running.cancel()  # a coroutine ends at its next await, unless it ignores this
        # (A thread's answer is left to come: cancelling it would free the slot while the
        # thread still runs.)
        slots.hold_until(running)
        raise _TimedOut
    return running.result()


class _Raised(Exception):  # noqa: N818 - carries what an async evaluator raised
    """An evaluator raised what is not an ``Exception`` (kept in ``raised``)."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(repr(raised))
        self.raised = raised


class _TimedOut(Exception):  # noqa: N818 - named as what happened
    """An evaluation took longer than its timeout."""


def _settle(answer: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if answer.done():
        return
    if ok:
        answer.set_result(value)
    else:
        answer.set_exception(value)


def _with_span(
    current: otel_context.Context, function: Callable[[JudgedRun], Any], run: JudgedRun
) -> Any:
    token = otel_context.attach(current)
    try:
        return function(run)
    finally:
        otel_context.detach(token)


async def _in_context(
    current: otel_context.Context, function: Callable[[JudgedRun], Any], run: JudgedRun
) -> Any:
    # A task of its own (wait_for makes one): attaching here touches only its context.
    token = otel_context.attach(current)
    try:
        return await function(run)
    except (asyncio.CancelledError, GeneratorExit):
        raise  # cancelled, or closed at the interpreter's exit: not the evaluator's error
    except Exception:
        raise
    except BaseException as error:
        # Raised in a task, these would stop the runner's event loop: the evaluator's error.
        raise _Raised(error) from error
    finally:
        otel_context.detach(token)
