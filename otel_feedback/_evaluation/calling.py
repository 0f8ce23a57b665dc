"""How one evaluator is called: plain ones on daemon threads, ``async`` ones on the loop, in time.

An evaluation that takes longer than its timeout is given up at once. A coroutine is
cancelled; a thread cannot be stopped, nor can a coroutine that ignores its cancellation, so
such an evaluation keeps its slot (:class:`Slots`) until it ends. What an evaluator raises
that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``, ...) is carried as
:class:`Raised`: raised as it is in a task, it would stop the runner's event loop.

The threads are daemons: a hung evaluator never holds up the process's exit
(``concurrent.futures`` pools are joined at exit).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from otel_feedback._evaluation.judged import JudgedRun

__all__ = [
    "Pool",
    "Raised",
    "Slots",
    "TimedOut",
    "in_context",
    "settle",
    "with_span",
    "within",
]

_STOP = object()


class Pool:
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
            if job is _STOP:
                return
            function, done = job
            try:
                outcome: tuple[bool, Any] = (True, function())
            except Exception as error:  # noqa: BLE001 - an evaluator's error is its outcome
                outcome = (False, error)
            except BaseException as error:  # noqa: BLE001 - so is SystemExit, KeyboardInterrupt
                # Set on the runner's future as they are, they would stop its event loop.
                outcome = (False, Raised(error))
            done(*outcome)

    def stop(self) -> None:
        for _ in self._threads:
            self._work.put(_STOP)


class Slots:
    """Evaluations at once; used on the runner's event loop only.

    An evaluation past its timeout that still runs (a thread cannot be stopped; a coroutine
    may ignore its cancellation) keeps its slot until it ends: it is "stuck". A slow
    evaluation ends at last, so runs wait for a slot (the bounded queue absorbs the wait, and
    what it cannot hold is skipped); once the runner is closing, :meth:`take` gives up at once
    when every slot is stuck rather than wait for what may never come.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.stuck = 0
        self.closing = False
        self._changed = asyncio.Event()

    async def take(self) -> bool:
        """Take a slot when one is free; False when closing (see the class's docstring)."""
        while self.free == 0:
            if self.closing and self.stuck >= self.size:
                return False
            self._changed.clear()
            await self._changed.wait()
        if self.closing and self.stuck >= self.size:
            return False
        self.free -= 1
        return True

    def close(self) -> None:
        """The runner is closing: a run waiting for a slot gives up when none can come."""
        self.closing = True
        self._changed.set()

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


async def within(running: asyncio.Future[Any], timeout_s: float, slots: Slots) -> Any:
    """The result of ``running`` if it ends within ``timeout_s``; else it is left to end."""
    if timeout_s > 0:
        await asyncio.wait({running}, timeout=timeout_s)
    if not running.done():
        if isinstance(running, asyncio.Task):
            running.cancel()  # a coroutine ends at its next await, unless it ignores this
        # (A thread's answer is left to come: cancelling it would free the slot while the
        # thread still runs.)
        slots.hold_until(running)
        raise TimedOut(running)
    return running.result()


class Raised(Exception):  # noqa: N818 - carries what an async evaluator raised
    """An evaluator raised what is not an ``Exception`` (kept in ``raised``)."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(repr(raised))
        self.raised = raised


class TimedOut(Exception):  # noqa: N818 - named as what happened
    """An evaluation took longer than its timeout; ``running`` is what still runs it."""

    def __init__(self, running: asyncio.Future[Any]) -> None:
        super().__init__("timed out")
        self.running = running


def settle(answer: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if answer.done():
        return
    if ok:
        answer.set_result(value)
    else:
        answer.set_exception(value)


def with_span(
    current: otel_context.Context, function: Callable[[JudgedRun], Any], run: JudgedRun
) -> Any:
    token = otel_context.attach(current)
    try:
        return function(run)
    finally:
        otel_context.detach(token)


async def in_context(
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
        raise Raised(error) from error
    finally:
        otel_context.detach(token)
