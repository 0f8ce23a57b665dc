"""The intake: the queue the application's threads fill, and the thread that empties it.

``put`` runs on the application's threads: it appends and counts, and waits (at most
``ROOM_WAIT_S``) only when the queue is full while something would make room soon. The
intake's thread turns what was queued into :class:`Feedback` records, one at a time (a
malformed item is dropped alone), writes them to the spool when there is one, and hands
them to every route. It also opens the spool (off the application's thread: another process
may hold its lock for a while) and runs its periodic upkeep.

Locking: the intake's lock guards its queue and flags. ``put`` and the intake's thread read
the routes' room while holding it (a route never takes the intake's lock while holding its
own; routes wake the intake through :meth:`Intake.wake`, outside their lock).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._export.delivery import forkgate
from otel_feedback._export.delivery.backlog import SpoolKeeper
from otel_feedback._export.delivery.ledger import Ledger
from otel_feedback._export.delivery.progress import Progress
from otel_feedback._export.delivery.route import Route
from otel_feedback._log import logger
from otel_feedback._model import Feedback

__all__ = ["Intake"]

Item = TypeVar("Item")

# How long put() waits for room in a full queue while something would make room soon.
ROOM_WAIT_S = 0.1
# How long records wait in the queue for the spool to open (it opens in milliseconds unless
# another process holds it locked); then they are taken in and delivered from memory.
OPEN_WAIT_S = 1.0


class Intake(Generic[Item]):
    """The queue and the intake thread of one processor. See the module docstring."""

    def __init__(
        self,
        *,
        to_record: Callable[[Item], Feedback],
        ledger: Ledger,
        routes: Sequence[Route],
        keeper: SpoolKeeper | None,
        max_queue: int,
        batch_size: int,
        delay_s: float,
        progress: Progress,
        suppressed: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._to_record = to_record
        self._ledger = ledger
        self._routes = routes
        self._keeper = keeper
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._delay_s = delay_s
        self._progress = progress
        self._suppressed = suppressed
        self._cv = threading.Condition()
        # Guarded by _cv:
        self._queue: deque[Item] = deque()
        self._busy = False
        self._due = time.monotonic() + delay_s
        self._flushing = 0
        self._final = False
        self._closed = False
        self._done = False
        self._orphans: set[str] = set()  # the intake's thread only: routes not configured now
        self._open_until = time.monotonic() + OPEN_WAIT_S
        self._thread = threading.Thread(name="otel_feedback.intake", target=self._run, daemon=True)

    def start(self) -> None:
        """Start the intake's thread, and the spool's opening on a thread of its own."""
        self._thread.start()
        if self._keeper is not None:
            # Apart from the intake: a spool another process holds locked must not hold
            # back delivery from memory meanwhile.
            threading.Thread(
                name="otel_feedback.spool", target=self._open_spool, daemon=True
            ).start()

    # -- the application's side --------------------------------------------------------

    def put(self, items: Sequence[Item]) -> None:
        """Queue ``items``; called on the application's threads. Never raises."""
        if len(items) <= self._batch_size:
            self._put(items)  # the common case: a span's few records
            return
        for start in range(0, len(items), self._batch_size):
            # Many records at once (a long span that collected them): in batches, each of
            # which may wait for room.
            self._put(items[start : start + self._batch_size])

    def _put(self, items: Sequence[Item]) -> None:
        if self._closed:
            self._ledger.refuse(len(items), "recorded after the processor shut down")
            return
        queue = self._queue
        before = len(queue)
        if before + len(items) > self._max_queue:
            self._put_when_full(items)
            return
        # The common path takes no lock of the intake's (it runs on the application's
        # threads for every span with feedback): deque.extend is atomic, counting comes
        # first so that the intake never takes in what is not counted yet, and threads
        # racing here overshoot the bound by their own few items at most.
        self._ledger.receive(len(items))
        queue.extend(items)
        if (self._keeper is not None and before == 0) or (
            before < self._batch_size <= before + len(items)
        ):
            # With a spool, every record is taken in (and written) at once.
            self.wake()
        if self._closed:
            self._lost_after_close()  # raced with close(): counted, not stranded

    def _put_when_full(self, items: Sequence[Item]) -> None:
        with self._cv:
            queue = self._queue
            if self._room_coming():
                self._cv.notify_all()
                self._cv.wait_for(lambda: len(queue) + len(items) <= self._max_queue, ROOM_WAIT_S)
            taken = items[: max(self._max_queue - len(queue), 0)]
            self._ledger.receive(len(taken))
            queue.extend(taken)
            if len(taken) < len(items):
                self._ledger.refuse(len(items) - len(taken), "the feedback queue is full")
            self._cv.notify_all()
        if self._closed:
            self._lost_after_close()

    def _lost_after_close(self) -> None:
        with self._cv:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._ledger.unqueue(left, "recorded after the processor shut down")

    def _room_coming(self) -> bool:
        # With the lock held: whether the intake would take items in soon.
        if self._final:
            return False
        if self._keeper is not None and (self._keeper.takes_writes or self._spool_opening()):
            return True
        return any((room := r.room()) is not None and room > 0 for r in self._routes)

    # -- what the engine calls -----------------------------------------------------------

    def wake(self) -> None:
        """Something may have made room (a route delivered)."""
        with self._cv:
            self._cv.notify_all()

    def flushing(self, delta: int) -> None:
        """A flush starts (+1) or ends (-1): partial batches leave at once meanwhile."""
        with self._cv:
            self._flushing += delta
            self._cv.notify_all()

    def idle(self) -> bool:
        """Nothing queued, nothing being taken in, the spool opened (or refused)."""
        with self._cv:
            busy = bool(self._queue) or self._busy
        return not busy and (self._keeper is None or self._keeper.opened)

    def begin_shutdown(self) -> None:
        """Take in everything queued, then end."""
        with self._cv:
            self._final = True
            self._cv.notify_all()

    @property
    def done(self) -> bool:
        """The intake's thread has ended (everything queued was taken in)."""
        with self._cv:
            return self._done

    def close(self) -> None:
        """Refuse new records; count what is still queued as lost."""
        with self._cv:
            self._closed = True
            left = len(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        if left:
            self._ledger.unqueue(left, "still queued when the shutdown deadline passed")

    # -- the intake's thread -------------------------------------------------------------

    def _run(self) -> None:
        with self._suppressed():
            while True:
                with self._cv:
                    items = self._next_items()
                    if items is None:
                        self._done = True
                        break
                    self._busy = True
                try:
                    self._take_in(items)
                except Exception as error:  # noqa: BLE001 - the intake must outlive any bug of ours
                    logger.warning("Feedback intake hit an error: %r", error)
                    logger.debug("The error's traceback", exc_info=True)
                with self._cv:
                    self._busy = False
                    self._due = time.monotonic() + self._delay_s
                self._progress.bump()
        self._progress.bump()

    def _open_spool(self) -> None:
        keeper = self._keeper
        assert keeper is not None
        with self._suppressed():
            try:
                if keeper.open():
                    self._resume(keeper.take_over())
            finally:
                keeper.mark_opened()
        for route in self._routes:
            route.wake()  # what waits in memory goes to the spool now
        self.wake()
        self._progress.bump()

    def _next_items(self) -> list[Item] | None:
        """With the lock held: wait until items are due; them, or None at the end."""
        while True:
            if self._closed or (self._final and not self._queue):
                return None
            now = time.monotonic()
            take = self._room_for_intake()
            due = (
                self._final
                or self._keeper is not None
                or self._flushing > 0
                or len(self._queue) >= self._batch_size
                or now >= self._due
            )
            if take and due:
                return [self._queue.popleft() for _ in range(take)]
            if self._keeper is not None and self._keeper.upkeep_due():
                return []  # the spool's upkeep also runs while idle
            wait = self._due - now if self._queue and not due else self._delay_s
            if self._spool_opening():
                wait = min(wait, self._open_until - now)  # then take them in, to memory
            self._cv.wait(max(wait, 0.001))

    def _room_for_intake(self) -> int:
        # With the lock held.
        queued = len(self._queue)
        if not self._final and self._spool_opening():
            return 0  # the spool opens in a moment: records go there first, not to memory
        if self._final or (self._keeper is not None and self._keeper.takes_writes):
            # With a spool that takes writes, everything is taken in (and written) at once;
            # at shutdown, everything is taken in to be accounted for.
            return queued
        rooms = [room for r in self._routes if (room := r.room()) is not None]
        return max(0, min(min(rooms, default=queued), queued))

    def _spool_opening(self) -> bool:
        """The spool is being opened, for at most OPEN_WAIT_S since the intake started."""
        keeper = self._keeper
        return keeper is not None and not keeper.opened and time.monotonic() < self._open_until

    def _take_in(self, items: list[Item]) -> None:
        with forkgate.inside():
            records: list[Feedback] = []
            malformed: Counter[str] = Counter()
            for item in items:
                try:
                    records.append(self._to_record(item))
                except InvalidFeedbackError as error:
                    logger.debug("Skipped a malformed feedback event: %s", error)
                    malformed[f"a malformed feedback event ({error.field})"] += 1
                except Exception as error:  # noqa: BLE001 - one bad item must not sink others
                    logger.debug("Skipped an unreadable feedback item", exc_info=True)
                    malformed[f"an unreadable feedback item ({type(error).__name__})"] += 1
        for reason, count in malformed.items():
            self._ledger.unqueue(count, reason)
        keeper = self._keeper
        written = 0
        if records and keeper is not None:
            keeper.check_file(now=False)  # a file deleted under us is noticed at once
        if records and keeper is not None and keeper.takes_writes:
            written = keeper.write(records, [r.name for r in self._routes])
        self._ledger.take_in(spooled=written, in_memory=len(records) - written)
        for route in self._routes:
            route.offer(records[:written], on_disk=True)
            route.offer(records[written:], on_disk=False)
        if keeper is not None and keeper.upkeep_due():
            self._resume(keeper.upkeep(orphans=sorted(self._orphans)))

    def _resume(self, left: Counter[str]) -> None:
        """Rows of ended processes taken over: their routes read them back."""
        if not left:
            return
        names = {route.name for route in self._routes}
        for route in self._routes:
            route.resume(left[route.name])
        assert self._keeper is not None
        logger.info(
            "Sending %d feedback record(s) again from the spool %s",
            sum(n for name, n in left.items() if name in names),
            self._keeper.path,
        )
        if orphans := {name: n for name, n in left.items() if name not in names}:
            self._orphans.update(orphans)
            logger.warning(
                "The spool %s holds records for exporters not configured now (%s); they are "
                "kept until the spool's age bound",
                self._keeper.path,
                ", ".join(f"{name}: {n}" for name, n in sorted(orphans.items())),
            )
