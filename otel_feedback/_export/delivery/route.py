"""One route: the delivery to one exporter, on a thread of its own.

A route owns its backlog in memory (records the spool did not take, or all of them without a
spool), reads back its rows from the spool, exports one batch at a time, and tells the ledger
what became of every record. Its state (the endpoint up, down or not ready, and, at shutdown,
finished) comes from :class:`~otel_feedback._export.delivery.policy.Policy`.

Locking: a route's lock guards what other threads see of it (its backlog, whether rows wait
in the spool, the batch in flight, shutdown). Its thread holds it only to decide the next step
and to put back what an export did not take; never while it exports or reads the disk. The
only calls made with it held go to the ledger and the progress signal, whose locks are leaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from otel_feedback._export.base import FeedbackExporter
from otel_feedback._export.delivery import forkgate
from otel_feedback._export.delivery.backlog import (
    MAX_UNREMOVED,
    RETRY_WRITE_EVERY_S,
    UPKEEP_EVERY_S,
    MemoryBacklog,
    Parcel,
    SpoolKeeper,
    SpoolRead,
)
from otel_feedback._export.delivery.ledger import Ledger, Place
from otel_feedback._export.delivery.outcome import Outcome, export_each
from otel_feedback._export.delivery.policy import Policy, State
from otel_feedback._log import logger
from otel_feedback._model import Feedback

if TYPE_CHECKING:
    from otel_feedback._export.delivery.progress import Progress

__all__ = ["Route"]

# An export taking longer than this no longer holds the intake (and so the other exporters).
SLOW_S = 2.0


@dataclass
class _Flight:
    """Records a route's thread holds outside its lock: being exported, or written."""

    size: int
    place: Place
    since: float
    records: list[Feedback] | None = None
    """Records in memory only: counted as lost if a bug of ours stops their delivery."""


class Route:
    """The delivery to one exporter. See the module docstring."""

    def __init__(
        self,
        name: str,
        exporter: FeedbackExporter,
        *,
        ledger: Ledger,
        keeper: SpoolKeeper | None,
        max_batch: int,
        max_held: int,
        retry_for_s: float,
        progress: Progress,
        wake_intake: Callable[[], None],
        suppressed: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.name = name
        self.exporter = exporter
        self._ledger = ledger
        self._keeper = keeper
        self._max_held = max_held
        self._progress = progress
        self._wake_intake = wake_intake
        self._suppressed = suppressed
        self._policy = Policy(name, max_batch=max_batch, retry_for_s=retry_for_s)
        self._cv = threading.Condition()
        # Guarded by _cv:
        self._backlog = MemoryBacklog()
        self._spool_news = 0  # bumped when rows for this route are written or taken over
        self._spool_pending = False
        self._flight: _Flight | None = None
        self._final: float | None = None
        self._closed = False
        self._finished = False
        # The route's thread only:
        self._cursor = 0
        self._unremoved: set[str] = set()
        self._upkeep_every_s = keeper.upkeep_every_s if keeper is not None else UPKEEP_EVERY_S
        self._next_expiry = time.monotonic() + self._upkeep_every_s
        self._thread = threading.Thread(
            name=f"otel_feedback.export:{name}", target=self._run, daemon=True
        )

    def start(self) -> None:
        """Start the route's thread."""
        self._thread.start()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._cv:
            yield
            self._cv.notify_all()

    # -- what other threads call -------------------------------------------------------

    def offer(self, records: list[Feedback], *, on_disk: bool) -> None:
        """New records for this route: rows in the spool, or records in memory."""
        if not records:
            return
        with self._locked():
            closed = self._closed
            if closed and not on_disk:
                pass  # counted below, outside the lock
            elif on_disk:
                self._spool_news += 1
                self._spool_pending = True
            else:
                self._backlog.add(Parcel(records, time.monotonic()))
                self._trim()
            self._finished = False
        if closed and not on_disk:
            self._keep_or_lose(records)

    def resume(self, count: int) -> None:
        """``count`` rows of ended processes, taken over, wait in the spool for this route."""
        if count:
            self._ledger.resumed(self.name, count)
            self._wake_for_spool()

    def _wake_for_spool(self) -> None:
        with self._locked():
            self._spool_news += 1
            self._spool_pending = True
            self._finished = False

    def wake(self) -> None:
        """Look at the next step now (the spool opened)."""
        with self._locked():
            self._finished = False

    def room(self) -> int | None:
        """How many more records the intake may hand this route, or None for no bound.

        A route whose endpoint takes batches holds the intake back rather than drop; one that
        is down, slow, or not ready for what it was given drops its own overflow instead of
        holding up the others.
        """
        with self._cv:
            flight = self._flight
            slow = flight is not None and time.monotonic() - flight.since > SLOW_S
            if self._policy.state is not State.UP or slow:
                return None
            held = self._backlog.count + (flight.size if flight else 0)
            return self._max_held - held

    def idle(self, *, wait_for_down: bool) -> bool:
        """Nothing waits for this route (or its endpoint is down and not waited for)."""
        with self._cv:
            if not wait_for_down and self._policy.state is State.DOWN:
                return True
            return not self._backlog and not self._spool_pending and self._flight is None

    def begin_shutdown(self, deadline: float) -> None:
        """From now on, try only until ``deadline``, and no more if the endpoint is down."""
        with self._locked():
            self._final = deadline

    @property
    def finished(self) -> bool:
        """Shutting down, and this route will try nothing more."""
        with self._cv:
            return self._finished and self._flight is None

    @property
    def state(self) -> State:
        """The endpoint's state as the route knows it."""
        with self._cv:
            return self._policy.state

    def close(self) -> int:
        """Stop; keep in the spool, or count as lost, what waits in memory.

        Returns:
            Records in flight, not on disk: the route's thread counts them when their export
            returns.
        """
        with self._locked():
            self._closed = True
            leftovers = self._backlog.take_all()
            in_flight = (
                self._flight.size if self._flight and self._flight.place is Place.MEMORY else 0
            )
        self._keep_or_lose(leftovers.records)
        return in_flight

    def unremoved(self) -> int:
        """Delivered records whose rows the disk refused to delete."""
        with self._cv:
            return len(self._unremoved)

    def retry_removals(self) -> None:
        """Delete the rows whose deletion the disk refused before (at shutdown)."""
        with self._cv:
            ids = list(self._unremoved)
        if ids and self._keeper is not None and self._keeper.remove(self.name, ids):
            with self._cv:
                self._unremoved.difference_update(ids)

    # -- the route's thread --------------------------------------------------------------

    def _run(self) -> None:
        with self._suppressed():
            while (step := self._next_step()) is not None:
                try:
                    step()
                except Exception as error:  # noqa: BLE001 - a route must outlive any bug of ours
                    logger.warning("Feedback delivery to %s hit an error: %r", self.name, error)
                    logger.debug("The error's traceback", exc_info=True)
                    self._lose_flight(error)
                self._progress.bump()
                self._wake_intake()  # the backlog may have room again

    def _next_step(self) -> Callable[[], None] | None:
        """Wait until there is something to do; the step, or None once closed."""
        with self._cv:
            while True:
                if self._closed:
                    return None
                now = time.monotonic()
                keeper = self._keeper
                if self._backlog and keeper is not None and keeper.takes_writes:
                    return self._write_backlog  # on disk as soon as the spool takes them
                has_work = bool(self._backlog) or self._spool_pending
                if self._final is not None:
                    finished = not has_work or not self._policy.worth_a_try_at_shutdown(
                        now, self._final
                    )
                    if finished != self._finished:
                        self._finished = finished
                        self._progress.bump()
                    if finished:
                        self._cv.wait()
                        continue
                if keeper is not None and keeper.usable and now >= self._next_expiry:
                    return self._expire
                wait = self._wait(now, has_work)
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                if self._backlog:
                    parcel = self._backlog.take(self._policy.batch_limit)
                    self._flight = _Flight(len(parcel.records), Place.MEMORY, now, parcel.records)
                    return lambda: self._export_memory(parcel)
                self._flight = _Flight(0, Place.SPOOL, now)
                return self._export_from_spool

    def _lose_flight(self, error: Exception) -> None:
        """After a bug of ours: what was in flight in memory only is counted as lost."""
        with self._locked():
            flight, self._flight = self._flight, None
        if flight is not None and flight.records:
            reason = f"a delivery error ({type(error).__name__})"
            self._ledger.dropped(self.name, Place.MEMORY, {reason: len(flight.records)})

    def _wait(self, now: float, has_work: bool) -> float:
        """With the lock held: how long to wait before the next step (0: now)."""
        if has_work:
            until = self._policy.next_try
            if self._final is not None:
                until = min(until, self._final)
        else:
            until = self._next_expiry if self._keeper is not None else now + 3600.0
        if self._backlog and self._keeper is not None and self._keeper.usable:
            until = min(until, now + RETRY_WRITE_EVERY_S)
        return until - now

    def _write_backlog(self) -> None:
        assert self._keeper is not None
        with self._locked():
            parcel = self._backlog.take_all()
            self._flight = _Flight(len(parcel.records), Place.MEMORY, time.monotonic())
        written = self._keeper.write(parcel.records, [self.name])
        self._ledger.moved(self.name, Place.MEMORY, Place.SPOOL, written)
        rest = parcel.records[written:]
        with self._locked():
            self._flight = None
            if written:
                self._spool_news += 1
                self._spool_pending = True
            if not self._closed:
                self._backlog.put_back(Parcel(rest, parcel.arrived))
                return
        self._keep_or_lose(rest)

    def _export_memory(self, parcel: Parcel) -> None:
        with forkgate.inside():
            outcome = export_each(self.exporter, parcel.records)
        with self._locked():
            self._flight = None  # settled below
        self._ledger.exported(self.name, Place.MEMORY, len(outcome.delivered))
        self._ledger.dropped(self.name, Place.MEMORY, outcome.reasons())
        now = time.monotonic()
        with self._locked():
            self._policy.learn(outcome, len(parcel.records), now)
            if not outcome.retry:
                return
            if not self._closed:
                self._hold(Parcel(outcome.retry, parcel.arrived), now)
                return
        self._keep_or_lose(outcome.retry)

    def _hold(self, parcel: Parcel, now: float) -> None:
        # With the lock held: records to try again, unless they waited too long.
        self._backlog.put_back(parcel)
        oldest = self._backlog.oldest()
        reason = self._policy.held_too_long(oldest if oldest is not None else now, now)
        if reason is None:
            self._trim()
            return
        if self._policy.state is State.DOWN:
            lost = self._backlog.take_all().records  # the endpoint is gone: all of them
        else:
            lost = self._backlog.take(len(parcel.records)).records
        self._ledger.dropped(self.name, Place.MEMORY, {reason: len(lost)})

    def _trim(self) -> None:
        # With the lock held: an endpoint that does not keep up keeps its newest records.
        flight = self._flight.size if self._flight and self._flight.place is Place.MEMORY else 0
        overflow = self._backlog.count + flight - self._max_held
        if overflow <= 0:
            return
        if self._final is not None:
            what = "at shutdown"
        elif self._policy.state is State.DOWN:
            what = "while the endpoint is down"
        else:
            what = "while the endpoint lags"
        lost = self._backlog.take(overflow).records
        reason = f"the backlog of {self._max_held} records is full {what}"
        self._ledger.dropped(self.name, Place.MEMORY, {reason: len(lost)})

    def _export_from_spool(self) -> None:
        assert self._keeper is not None
        with self._cv:
            news = self._spool_news
        batch = self._read_spool()
        if batch is None:
            with self._locked():
                self._flight = None
                if news == self._spool_news:
                    self._spool_pending = False
            return
        with self._locked():
            self._flight = _Flight(len(batch.records), Place.SPOOL, time.monotonic())
        with forkgate.inside():
            outcome = export_each(self.exporter, batch.records)
        done = [str(r.id) for r in outcome.delivered] + [str(r.id) for r, _ in outcome.refused]
        if not self._keeper.remove(self.name, done):
            room = MAX_UNREMOVED - len(self._unremoved)
            with self._cv:
                self._unremoved.update(done[: max(room, 0)])
        self._ledger.exported(self.name, Place.SPOOL, len(outcome.delivered))
        self._ledger.dropped(self.name, Place.SPOOL, outcome.reasons())
        now = time.monotonic()
        with self._locked():
            self._flight = None
            self._policy.learn(outcome, len(batch.records), now)
        if outcome.retry and outcome.down:
            self._cursor = batch.first_rowid - 1  # the same rows first, next time
        elif outcome.retry:
            self._expire_unready(outcome, batch)

    def _read_spool(self) -> SpoolRead | None:
        # Rows are read past a cursor, so that rows the endpoint is not ready for do not
        # block those after them; at the end the cursor goes back to the start for them.
        assert self._keeper is not None
        restarted = False
        while True:
            with self._cv:
                skip = set(self._unremoved)
            batch, unreadable = self._keeper.read(
                self.name, self._policy.batch_limit, after=self._cursor, skip=skip
            )
            if unreadable:
                self._ledger.dropped(
                    self.name, Place.SPOOL, {"unreadable in the spool": len(unreadable)}
                )
            if batch is not None:
                self._cursor = batch.last_rowid
                if batch.records:
                    return batch
                continue  # rows that could not be read back: on to the next ones
            if not self._cursor or restarted:
                return None
            self._cursor, restarted = 0, True

    def _expire_unready(self, outcome: Outcome, batch: SpoolRead) -> None:
        # Rows the endpoint has not taken for retry_for leave the spool, counted.
        assert self._keeper is not None
        limit = time.time() - self._policy.retry_for_s
        old = [r for r in outcome.retry if batch.spooled_at.get(id(r), limit) < limit]
        if old and self._keeper.remove(self.name, [str(r.id) for r in old]):
            reason = f"not accepted for {self._policy.retry_for_s:g}s"
            self._ledger.dropped(self.name, Place.SPOOL, {reason: len(old)})

    def _expire(self) -> None:
        assert self._keeper is not None
        self._next_expiry = time.monotonic() + self._upkeep_every_s
        with self._cv:
            keep = set(self._unremoved)
        expired = self._keeper.expire(self.name, keep=keep)
        if expired:
            reason = f"older than the spool's bound ({self._keeper.max_age_s:g}s)"
            self._ledger.dropped(self.name, Place.SPOOL, {reason: expired})
        self.retry_removals()

    def _keep_or_lose(self, records: list[Feedback]) -> None:
        """Records left in memory at shutdown: into the spool if it takes them, else lost."""
        if not records:
            return
        written = self._keeper.write(records, [self.name]) if self._keeper is not None else 0
        self._ledger.moved(self.name, Place.MEMORY, Place.SPOOL, written)
        with self._cv:
            state = self._policy.state
        if state is State.DOWN:
            reason = "unreachable at shutdown"
        elif state is State.NOT_READY:
            reason = "not accepted by the endpoint by shutdown"
        else:
            reason = "not done at shutdown"
        self._ledger.dropped(self.name, Place.MEMORY, {reason: len(records) - written})
