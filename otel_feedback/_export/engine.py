"""The delivery engine: one queue, one intake thread, and one route per exporter.

The application's threads only append to the queue (``put``). The intake thread turns
what they queued into :class:`Feedback` records, one at a time (a malformed item is dropped
alone), writes them to the spool when there is one, and offers them to every route. Each
route owns the delivery to one exporter: its backlog in memory, its retry with backoff while
the endpoint is down, reading back from the spool what did not fit in memory, and the counts
of what it delivered and what it lost and why. Exporters only translate and send.

Bounds: the queue and each route's backlog hold ``max_queue_size`` records at most. Without
a spool, a full backlog of a route that is taking batches holds the intake back, so the
queue fills and ``put`` waits up to ``_ROOM_WAIT_S`` for room before dropping; a route whose
endpoint is down drops what overflows its backlog, and what waited longer than
``retry_for_s``. With a spool, none of that is dropped: it stays on disk and is read back
once the endpoint takes batches again.

Shutdown and exit share one deadline: a route whose endpoint is down gets no further try,
the others deliver until they are empty or the deadline passes, and what is left stays in
the spool or is counted as dropped.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._export.base import (
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
)
from otel_feedback._export.spool import Spool, SpoolError, SpoolFullError
from otel_feedback._log import LossLog, logger, warn_once
from otel_feedback._model import Feedback
from otel_feedback._version import __version__

__all__ = ["Engine", "FeedbackExportStats"]

Item = TypeVar("Item")

_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 10.0
# How long put() waits for room in a full queue while every endpoint takes batches.
_ROOM_WAIT_S = 0.1
# How often the spool's age bound is applied, and rows of ended processes taken over.
_EXPIRE_EVERY_S = 60.0
_MAX_UNREMOVED = 100_000  # per exporter: ids of delivered records whose rows await deletion
# An export taking longer than this no longer holds the intake (and so the other exporters).
_SLOW_S = 2.0
# Distinct drop reasons kept per exporter; later ones are counted together.
_MAX_REASONS = 50
# At shutdown, an endpoint that answers but has taken none of the records it was given for
# this long gets no further try (the SDK's OTLP exporters give up after 10 s too).
_GIVE_UP_UNREADY_S = 10.0
# After this long waiting at shutdown, one line says what is still being delivered.
_SAY_AFTER_S = 1.0


@dataclass(frozen=True)
class FeedbackExportStats:
    """What became of the records a processor received, at one instant.

    For each exporter: ``received`` + ``resumed`` = ``exported`` + ``dropped`` + ``pending`` +
    ``spooled``, once the processor is flushed (a record being sent and not yet on disk is in
    none of the last four).
    """

    received: int
    """Records handed to the processor (queued, or refused by a full queue)."""
    resumed: dict[str, int]
    """Records taken over from the spool, left by processes that are no longer running."""
    exported: dict[str, int]
    """Records delivered, per exporter."""
    dropped: dict[str, dict[str, int]]
    """Records lost, per exporter, per reason."""
    pending: dict[str, int]
    """Records waiting in memory and not on disk, per exporter."""
    spooled: dict[str, int]
    """This process's rows in the spool file, per exporter."""


@dataclass
class _Parcel:
    records: list[Feedback]
    arrived: float
    on_disk: bool


@dataclass
class _Route:
    """The delivery to one exporter; all fields are guarded by the engine's lock."""

    name: str
    exporter: FeedbackExporter
    parcels: deque[_Parcel] = field(default_factory=deque)
    held: int = 0
    spool_fed: bool = False
    in_flight: int = 0
    flying_since: float = 0.0
    batch_limit: int = 0
    """Records per export now: halved while the endpoint answers RETRY to a larger batch."""
    cursor: int = 0
    """The last spool row read back; rows behind it wait for the next pass."""
    spooled_at: dict[str, float] = field(default_factory=dict)
    """When each record of the batch read back from the spool was written (wall clock)."""
    resumed: int = 0
    flying: _Parcel | None = None
    """The batch being exported, until its outcome is counted."""
    unready_since: float | None = None
    """Since when the endpoint answers but takes none of the records it is given."""
    failing_since: float | None = None
    next_try: float = 0.0
    backoff_s: float = _FIRST_BACKOFF_S
    finished: bool = False
    exported: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    unremoved: set[str] = field(default_factory=set)
    """Ids done with (delivered or refused) whose spool rows could not be deleted yet."""

    @property
    def down(self) -> bool:
        return self.failing_since is not None

    @property
    def has_work(self) -> bool:
        return self.held > 0 or self.spool_fed

    @property
    def idle(self) -> bool:
        return not self.has_work and not self.in_flight


class Engine(Generic[Item]):
    """Queue, intake, routes and spool of one processor. See the module docstring."""

    def __init__(
        self,
        exporters: Sequence[FeedbackExporter],
        *,
        to_record: Callable[[Item], Feedback],
        max_queue_size: int,
        max_export_batch_size: int,
        schedule_delay_s: float,
        retry_for_s: float,
        spool: Spool | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        self._to_record = to_record
        self._max_queue = max_queue_size
        self._batch_size = max_export_batch_size
        self._delay_s = schedule_delay_s
        self._retry_for_s = retry_for_s
        self._spool = spool
        self._routes = tuple(
            _Route(name, e, batch_limit=max_export_batch_size)
            for name, e in _route_names(exporters)
        )
        self._spool_ok = spool is not None
        self._unwritten: list[list[tuple[_Route, _Parcel]]] = []
        meter = metrics.get_meter("otel_feedback", __version__, meter_provider=meter_provider)
        self._dropped_counter = meter.create_counter(
            "otel_feedback.records.dropped",
            unit="{record}",
            description="Feedback records lost, per exporter and reason",
        )
        self._exported_counter = meter.create_counter(
            "otel_feedback.records.exported",
            unit="{record}",
            description="Feedback records delivered, counted once per exporter",
        )
        self._losses = LossLog("feedback record(s)")
        self._received = 0
        self._start()

    def _start(self) -> None:
        _suppressed()  # imported here, once: threads importing it at once can deadlock
        self._lock = threading.Lock()
        self._intake_cv = threading.Condition(self._lock)
        self._progress_cv = threading.Condition(self._lock)
        self._queue: deque[Item] = deque()
        # With a spool, the intake first takes over what earlier processes left (off the
        # application's thread: another process may hold the file's lock for a while).
        self._intake_busy = self._spool is not None
        self._intake_done = False
        self._intake_due = time.monotonic() + self._delay_s
        self._flushing = 0
        self._final_deadline: float | None = None
        self._stopped = False
        self._next_expiry = time.monotonic() + _EXPIRE_EVERY_S
        self._next_file_check = 0.0
        self._threads = [
            threading.Thread(name="otel_feedback.intake", target=self._intake_loop, daemon=True)
        ]
        self._threads += [
            threading.Thread(
                name=f"otel_feedback.export:{route.name}",
                target=self._route_loop,
                args=(route,),
                daemon=True,
            )
            for route in self._routes
        ]
        for thread in self._threads:
            thread.start()

    def after_fork(self) -> None:
        """In a forked child: fresh threads, queue, backlogs, counts; the parent sends its own."""
        self._routes = tuple(
            _Route(r.name, r.exporter, batch_limit=self._batch_size) for r in self._routes
        )
        self._received = 0
        self._unwritten = []
        if self._spool is not None:
            try:
                self._spool.reopen()
            except Exception:  # noqa: BLE001 - the child must deliver, spool or not
                logger.warning(
                    "The feedback spool %s cannot be opened in this forked process; it "
                    "delivers without one",
                    self._spool.path,
                    exc_info=True,
                )
                self._spool = None
                self._spool_ok = False
        self._start()

    def _take_over(self, spool: Spool) -> None:
        """Own the rows left by processes that no longer run; their routes read them back."""
        try:
            left = spool.take_over()
        except Exception:  # noqa: BLE001 - a failing disk must not stop the application
            warn_once(f"spool-read:{spool.path}", "Could not read the spool %s", spool.path)
            return
        if not left:
            return
        names = {route.name for route in self._routes}
        with self._lock:
            for route in self._routes:
                if left[route.name]:
                    route.resumed += left[route.name]
                    route.spool_fed = True
                    route.finished = False
            self._progress_cv.notify_all()
        logger.info(
            "Sending %d feedback record(s) again from the spool %s", sum(left.values()), spool.path
        )
        if orphans := {name: n for name, n in left.items() if name not in names}:
            warn_once(
                f"spool-orphans:{spool.path}",
                "The spool %s holds records for exporters not configured now (%s); they are "
                "kept until the spool's age bound",
                spool.path,
                ", ".join(f"{name}: {n}" for name, n in sorted(orphans.items())),
            )

    # -- the application's side ------------------------------------------------------------

    def put(self, items: Sequence[Item]) -> None:
        """Queue ``items``; called on the application's threads. Never raises."""
        if self._stopped or (self._final_deadline is not None and self._intake_done):
            self._lost_before_routes(len(items), "recorded after the processor shut down")
            return
        if len(items) <= self._batch_size:
            self._put(items)
            return
        # Many records at once (a long span that collected them): in batches, each of which
        # may wait for room.
        for start in range(0, len(items), self._batch_size):
            self._put(items[start : start + self._batch_size])

    def _put(self, items: Sequence[Item]) -> None:
        queue = self._queue
        if len(queue) + len(items) > self._max_queue and not self._wait_for_room(len(items)):
            room = max(self._max_queue - len(queue), 0)
            self._lost_before_routes(len(items) - room, "the feedback queue is full")
            items = items[:room]
        before = len(queue)
        # deque.extend is atomic: no lock on this path. Threads racing here may together
        # overshoot the bound by their own few items.
        queue.extend(items)
        if (self._spool is not None and before == 0) or (before < self._batch_size <= len(queue)):
            # With a spool, every record is taken in (and written) at once.
            with self._intake_cv:
                self._intake_cv.notify()

    def _wait_for_room(self, count: int) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._final_deadline is not None or not (
                self._spool_ok or any(self._holds_intake(r, now) for r in self._routes)
            ):
                return False  # nothing would make room soon
            self._intake_cv.notify()
            return self._progress_cv.wait_for(
                lambda: len(self._queue) + count <= self._max_queue, _ROOM_WAIT_S
            )

    # -- intake ----------------------------------------------------------------------------

    def _intake_loop(self) -> None:
        with _suppressed():
            if self._spool is not None:
                self._take_over(self._spool)
                with self._lock:
                    self._intake_busy = False
                    self._progress_cv.notify_all()
            while True:
                with self._lock:
                    take = self._wait_for_intake()
                    if take is None:
                        self._intake_done = True
                        self._progress_cv.notify_all()
                        return
                    self._intake_busy = True
                try:
                    self._take_in(take)
                except Exception:  # noqa: BLE001 - the intake must outlive any bug of ours
                    logger.warning("Feedback intake hit an error", exc_info=True)
                with self._lock:
                    self._intake_busy = False
                    self._intake_due = time.monotonic() + self._delay_s
                    self._progress_cv.notify_all()

    def _wait_for_intake(self) -> int | None:
        """With the lock held: wait until items are due; how many to take, None at the end."""
        while True:
            final = self._final_deadline is not None
            if final and not self._queue:
                return None
            take = self._room_for_intake()
            now = time.monotonic()
            due = (
                final
                or self._spool is not None
                or self._flushing > 0
                or len(self._queue) >= self._batch_size
                or now >= self._intake_due
            )
            if take and due:
                return take
            if self._unwritten and now >= self._intake_due:
                return 0  # records the spool could not take yet: try them again
            if self._spool is not None and now >= self._next_expiry:
                return 0  # the spool's upkeep (its file, its age bound) also while idle
            wait = self._intake_due - now if self._queue and not due else self._delay_s
            if self._spool is not None:
                wait = min(wait, self._next_expiry - now)
            self._intake_cv.wait(max(wait, 0.001))

    def _room_for_intake(self) -> int:
        if self._final_deadline is not None or self._spool_ok:
            # With a spool that takes writes, everything is taken in (and written) at once;
            # at shutdown, everything is taken in to be accounted for.
            return len(self._queue)
        # Otherwise an exporter that takes batches holds the intake back rather than drop:
        # the queue fills and put() waits. One that is down, slow, or not ready for what it
        # was given drops its own overflow instead of holding up the others.
        now = time.monotonic()
        room = min(
            (
                self._max_queue - r.held - r.in_flight
                for r in self._routes
                if self._holds_intake(r, now)
            ),
            default=self._max_queue,
        )
        return max(0, min(room, len(self._queue)))

    @staticmethod
    def _holds_intake(route: _Route, now: float) -> bool:
        slow = route.in_flight > 0 and now - route.flying_since > _SLOW_S
        return not route.down and route.unready_since is None and not slow

    def _take_in(self, count: int) -> None:
        self._check_spool_file()
        self._retry_removals()
        self._write_unwritten()
        queue = self._queue
        items = [queue.popleft() for _ in range(min(count, len(queue)))]
        records: list[Feedback] = []
        for item in items:
            try:
                records.append(self._to_record(item))
            except InvalidFeedbackError as error:
                logger.debug("Skipped a malformed feedback event: %s", error)
                self._lost_before_routes(1, f"a malformed feedback event ({error.field})")
            except Exception as error:  # noqa: BLE001 - one bad item must not sink others
                logger.debug("Skipped an unreadable feedback item", exc_info=True)
                self._lost_before_routes(1, f"an unreadable feedback item ({type(error).__name__})")
        with self._lock:
            # Written under the lock: a route fed from the spool must not read (and send)
            # these rows and then find the same records handed to it in memory.
            written = self._spool_put(records) if records else 0
            self._received += len(records)
            now = time.monotonic()
            for route in self._routes:
                self._offer(route, records[:written], now, on_disk=True)
            rest = records[written:]
            kept = [(r, self._offer(r, rest, now, on_disk=False)) for r in self._routes]
            if rest and self._spool is not None:
                self._unwritten.append([(r, p) for r, p in kept if p is not None])
        self._maybe_expire()

    def _spool_put(self, records: list[Feedback], routes: list[str] | None = None) -> int:
        """Write ``records`` to the spool for ``routes`` (default all); how many it took.

        For given ``routes`` (records written again), all of them or none.
        """
        spool = self._spool
        if spool is None:
            return 0
        try:
            written = spool.put(
                records, routes or [route.name for route in self._routes], partial=not routes
            )
        except SpoolFullError:
            if self._spool_ok:
                logger.warning(
                    "The feedback spool %s is full (%d rows); new records wait in memory",
                    spool.path,
                    spool.max_records,
                )
            self._spool_ok = False
            return 0
        except Exception:  # noqa: BLE001 - a failing disk must not stop the export
            if self._spool_ok:
                logger.warning(
                    "Could not write to the feedback spool %s; records wait in memory and "
                    "are written when it works again",
                    spool.path,
                    exc_info=True,
                )
            self._spool_ok = False
            return 0
        was_ok, self._spool_ok = self._spool_ok, written == len(records)
        if was_ok and not self._spool_ok:
            logger.warning(
                "The feedback spool %s is full (%d rows); new records wait in memory",
                spool.path,
                spool.max_records,
            )
        return written

    def _write_unwritten(self) -> None:
        """Write what the spool could not take before; those parcels are then on disk.

        Under the lock, so that no route takes (and delivers) a record between reading the
        parcel and writing its rows: a row written after its record left would be sent again.
        """
        with self._lock:
            while self._unwritten:
                for route, parcel in self._unwritten[0]:
                    if parcel.on_disk or not parcel.records:
                        continue
                    if self._spool_put(parcel.records, [route.name]) < len(parcel.records):
                        return  # all or nothing: tried again next time
                    parcel.on_disk = True
                    if route.spool_fed and any(p is parcel for p in route.parcels):
                        # The route reads its records from the spool now: not from memory too.
                        route.parcels = deque(p for p in route.parcels if p is not parcel)
                        route.held -= len(parcel.records)
                self._unwritten.pop(0)

    def _check_spool_file(self) -> None:
        """Move the spool to a new file when its file was deleted or replaced while in use."""
        spool = self._spool
        if spool is None or time.monotonic() < self._next_file_check:
            return
        try:
            moved = spool.recover_if_gone()
        except SpoolError as error:
            # Tried again at the next expiry pass, not on every record.
            self._next_file_check = time.monotonic() + _EXPIRE_EVERY_S
            warn_once(
                f"spool-gone:{spool.path}",
                "The feedback spool %s was deleted and no new file can be made there (%s); "
                "its records are kept only until this process ends",
                spool.path,
                error,
            )
            return
        except Exception:  # noqa: BLE001 - a failing disk must not stop the export
            self._next_file_check = time.monotonic() + _EXPIRE_EVERY_S
            warn_once(f"spool-read:{spool.path}", "Could not read the spool", exc_info=True)
            return
        self._next_file_check = 0.0
        if moved is not None:
            logger.warning(
                "The feedback spool %s was deleted or replaced while in use; this process's "
                "%d waiting record row(s) were written to a new file there",
                spool.path,
                moved,
            )

    def _maybe_expire(self) -> None:
        spool = self._spool
        if spool is None or time.monotonic() < self._next_expiry:
            return
        self._next_expiry = time.monotonic() + _EXPIRE_EVERY_S
        self._next_file_check = 0.0
        self._check_spool_file()
        try:
            expired = spool.expire()
        except Exception:  # noqa: BLE001 - a failing disk must not stop the export
            warn_once(f"spool-expire:{spool.path}", "Could not expire the spool %s", spool.path)
            return
        self._count_evicted(expired, f"older than the spool's bound ({spool.max_age_s:g}s)")
        self._take_over(spool)

    def _count_evicted(self, evicted: Counter[str], reason: str) -> None:
        with self._lock:
            for route in self._routes:
                if evicted[route.name]:
                    self._lost(route, evicted[route.name], reason)

    def _offer(
        self, route: _Route, records: list[Feedback], now: float, on_disk: bool
    ) -> _Parcel | None:
        """With the lock held: give ``route`` the records; the parcel it keeps, if any."""
        if not records or (route.spool_fed and on_disk):
            return None  # the route reads them back from the spool
        parcel = _Parcel(list(records), now, on_disk)
        route.parcels.append(parcel)
        route.held += len(records)
        route.finished = False  # until the route has looked at its new work
        self._trim(route)
        self._progress_cv.notify_all()
        return parcel

    def _trim(self, route: _Route) -> None:
        # Called with the lock held. Without a spool, the backlog of an endpoint that is
        # down keeps its newest records; the intake holds back for one that takes batches.
        overflow = route.held + route.in_flight - self._max_queue
        if overflow > 0 and any(p.on_disk for p in route.parcels):
            self._feed_from_spool(route, f"its backlog is full ({self._max_queue} records)")
            overflow = route.held + route.in_flight - self._max_queue
        if overflow > 0:
            if self._final_deadline is not None:
                what = "at shutdown"
            elif route.down:
                what = "while the endpoint is down"
            else:
                what = "while the endpoint lags"
            self._lost(
                route,
                self._take(route, overflow).records,
                f"the backlog of {self._max_queue} records is full {what}",
            )

    def _feed_from_spool(self, route: _Route, why: str) -> None:
        # Called with the lock held. Records on disk leave memory; those that are not on
        # disk (the spool failed to take them) stay.
        if not route.spool_fed:
            logger.info("%s: %s; its records wait in the spool", route.name, why)
        route.spool_fed = True
        kept = deque(p for p in route.parcels if not p.on_disk)
        route.parcels = kept
        route.held = sum(len(p.records) for p in kept)
        self._progress_cv.notify_all()

    # -- routes ----------------------------------------------------------------------------

    def _route_loop(self, route: _Route) -> None:
        with _suppressed():
            while True:
                with self._lock:
                    due = self._next_batch(route)
                    if due is None:
                        return
                    route.in_flight = len(due.records)
                    route.flying = due
                    route.flying_since = time.monotonic()
                try:
                    self._deliver(route, due)
                except Exception:  # noqa: BLE001 - a route must outlive any bug of ours
                    logger.warning("Feedback delivery hit an error", exc_info=True)
                finally:
                    with self._lock:
                        route.in_flight = 0
                        route.flying = None
                        self._progress_cv.notify_all()
                        self._intake_cv.notify()  # the backlog may have room again

    def _next_batch(self, route: _Route) -> _Parcel | None:
        """With the lock held: wait until ``route`` has a batch due; ``None`` once stopped."""
        while True:
            if self._stopped:
                return None
            now = time.monotonic()
            if self._final_deadline is not None:
                # Shutting down: a route whose endpoint is down gets no further try, nor one
                # that has not taken any record for _GIVE_UP_UNREADY_S.
                working = (
                    route.has_work
                    and not route.down
                    and now < self._final_deadline
                    and (
                        route.unready_since is None
                        or max(now, route.next_try) - route.unready_since < _GIVE_UP_UNREADY_S
                    )
                )
                route.finished = not working
                if not working:
                    self._progress_cv.notify_all()
                    self._progress_cv.wait()
                    continue
                if now < route.next_try:
                    self._progress_cv.wait(min(route.next_try, self._final_deadline) - now)
                    continue
            elif not (route.has_work and now >= route.next_try):
                self._progress_cv.wait(route.next_try - now if route.has_work else None)
                continue
            if route.held:
                return self._take(route, route.batch_limit)
            batch = self._read_spool(route)
            if batch:
                return _Parcel(batch, now, on_disk=True)

    def _take(self, route: _Route, count: int) -> _Parcel:
        """Up to ``count`` records from the front of the backlog, as one parcel."""
        taken = _Parcel([], time.monotonic(), on_disk=True)
        while route.parcels and len(taken.records) < count:
            parcel = route.parcels[0]
            if not taken.records:
                taken.on_disk = parcel.on_disk
            elif parcel.on_disk != taken.on_disk:
                break  # a batch is all on disk or all off it
            taken.arrived = min(taken.arrived, parcel.arrived)
            want = count - len(taken.records)
            if len(parcel.records) <= want:
                route.parcels.popleft()
                taken.records += parcel.records
                # Emptied, not only unlinked: a parcel the spool could not take is also
                # listed to be written later, and must not be written (and sent) once gone.
                parcel.records = []
            else:
                taken.records += parcel.records[:want]
                parcel.records = parcel.records[want:]
        route.held -= len(taken.records)
        return taken

    def _read_spool(self, route: _Route) -> list[Feedback]:
        # Called with the lock held, so that the intake cannot hand this route a record
        # between "the spool has nothing more" and "back to memory". Rows are read past a
        # cursor, so that rows the endpoint is not ready for do not block those after them;
        # at the end the cursor goes back to the start for them.
        assert self._spool is not None
        restarted = False
        while True:
            try:
                rows, unreadable = self._spool.oldest(
                    route.name, route.batch_limit, after=route.cursor
                )
                if not rows and route.cursor and not restarted:
                    route.cursor, restarted = 0, True
                    continue
                if unreadable:
                    self._spool.remove(unreadable, route.name)
                    self._lost(route, len(unreadable), "unreadable in the spool")
            except Exception:  # noqa: BLE001 - a failing disk must not stop the export
                warn_once(
                    f"spool-read:{self._spool.path}", "Could not read the spool", exc_info=True
                )
                rows = []
            if not rows:
                route.spool_fed = False
                return []
            route.cursor = rows[-1].rowid
            # Rows of records already delivered whose deletion the disk refused: not again.
            kept = [row for row in rows if str(row.record.id) not in route.unremoved]
            if kept:
                route.spooled_at = {str(row.record.id): row.spooled_at for row in kept}
                return [row.record for row in kept]

    def _deliver(self, route: _Route, batch: _Parcel) -> None:
        outcome = _export_each(route.exporter, batch.records)
        done = [*outcome.delivered, *(r for r, _ in outcome.refused)]
        if self._spool is not None and done:
            self._remove_rows(route, [str(r.id) for r in done])
        with self._lock:
            route.in_flight = 0
            route.flying = None
            if self._stopped:
                return  # the shutdown deadline passed: this batch was counted then
            now = time.monotonic()
            if outcome.delivered:
                route.unready_since = None
            elif outcome.retry and not outcome.down and route.unready_since is None:
                route.unready_since = now
            if outcome.delivered or (outcome.retry and not outcome.down):
                # The endpoint answered: it is up, whatever it said of these records.
                route.failing_since = None
            if outcome.down and len(batch.records) > 1:
                # Maybe the batch itself is the trouble (too large for the endpoint): try
                # smaller ones until something gets through.
                route.batch_limit = max(1, len(batch.records) // 2)
            if outcome.delivered:
                route.exported += len(outcome.delivered)
                route.backoff_s = _FIRST_BACKOFF_S
                route.batch_limit = self._batch_size
                self._exported_counter.add(len(outcome.delivered), {"exporter": route.name})
            for reason, count in Counter(reason for _, reason in outcome.refused).items():
                self._lost(route, count, f"refused: {reason}")
            if outcome.retry:
                batch.records = outcome.retry
                self._hold(route, batch, down=outcome.down)

    def _hold(self, route: _Route, parcel: _Parcel, *, down: bool) -> None:
        """With the lock held: records the exporter could not take now, to try again later.

        ``down``: the endpoint is unavailable (rather than not ready for these records).
        """
        now = time.monotonic()
        if down and route.failing_since is None:
            route.failing_since = now
            logger.info("%s cannot take feedback now; retrying with backoff", route.name)
        route.next_try = now + route.backoff_s
        route.backoff_s = min(route.backoff_s * 2, _MAX_BACKOFF_S)
        if route.spool_fed and parcel.on_disk:
            # They are still in the spool, read back at a later pass; those the endpoint
            # has not taken for retry_for leave it.
            if not down:
                self._expire_unready(route, parcel.records)
            return
        route.parcels.appendleft(parcel)
        route.held += len(parcel.records)
        if not parcel.on_disk:
            self._trim(route)
        waited = now - (route.failing_since if route.failing_since is not None else parcel.arrived)
        if waited <= self._retry_for_s:
            return
        why = "unreachable" if down else "not accepted"
        if parcel.on_disk:
            self._feed_from_spool(route, f"{why} for {self._retry_for_s:g}s")
        elif down:
            self._lost(
                route, self._take(route, route.held).records, f"{why} for {self._retry_for_s:g}s"
            )
        else:
            route.parcels.popleft()
            route.held -= len(parcel.records)
            self._lost(route, len(parcel.records), f"{why} for {self._retry_for_s:g}s")

    def _expire_unready(self, route: _Route, records: list[Feedback]) -> None:
        # Called with the lock held.
        assert self._spool is not None
        limit = time.time() - self._retry_for_s
        old = [r for r in records if route.spooled_at.get(str(r.id), limit) < limit]
        if not old:
            return
        self._remove_rows(route, [str(r.id) for r in old], locked=True)
        self._lost(route, len(old), f"not accepted for {self._retry_for_s:g}s")

    def _remove_rows(self, route: _Route, ids: list[str], *, locked: bool = False) -> None:
        """Delete the spool rows of records ``route`` is done with; if the disk refuses, later.

        Until their rows are gone, those ids are neither read back nor counted as spooled.
        """
        assert self._spool is not None
        try:
            self._spool.remove(ids, route.name)
        except Exception:  # noqa: BLE001 - a full disk must not stop the export
            warn_once(
                f"spool-remove:{self._spool.path}",
                "Could not delete delivered records from the feedback spool %s (is the disk "
                "full?); tried again later",
                self._spool.path,
            )
            if locked:
                self._hold_removal(route, ids)
            else:
                with self._lock:
                    self._hold_removal(route, ids)

    def _hold_removal(self, route: _Route, ids: list[str]) -> None:
        # Called with the lock held. Bounded: past it, such rows are sent again by a later
        # pass or process (at least once), rather than held in memory without end.
        room = _MAX_UNREMOVED - len(route.unremoved)
        route.unremoved.update(ids[: max(room, 0)])

    def _retry_removals(self) -> None:
        spool = self._spool
        if spool is None:
            return
        with self._lock:
            waiting = [(route, list(route.unremoved)) for route in self._routes if route.unremoved]
        for route, ids in waiting:
            try:
                spool.remove(ids, route.name)
            except Exception:  # noqa: BLE001 - still refused: next time
                logger.debug("The spool still refuses deletions", exc_info=True)
                continue
            with self._lock:
                route.unremoved.difference_update(ids)

    # -- counting --------------------------------------------------------------------------

    def _lost(self, route: _Route, count: int | list[Feedback], reason: str) -> None:
        number = count if isinstance(count, int) else len(count)
        if not number:
            return
        if reason not in route.dropped and len(route.dropped) >= _MAX_REASONS:
            reason = f"other reasons (past {_MAX_REASONS} distinct ones)"
        route.dropped[reason] += number
        self._dropped_counter.add(number, {"exporter": route.name, "reason": reason})
        self._losses.report(route.name, reason, number)

    def _lost_before_routes(self, count: int, reason: str) -> None:
        with self._lock:
            self._received += count
            for route in self._routes:
                self._lost(route, count, reason)

    @property
    def dropped(self) -> int:
        """Records lost so far, once per exporter that lost them."""
        with self._lock:
            return sum(sum(r.dropped.values()) for r in self._routes)

    @property
    def retrying(self) -> int:
        """Records held in memory (or being tried again) for an exporter whose endpoint is down."""
        with self._lock:
            return sum(r.held + r.in_flight for r in self._routes if r.down)

    def stats(self) -> FeedbackExportStats:
        """A snapshot of the counts."""
        spooled = {r.name: 0 for r in self._routes}
        if self._spool is not None and not self._intake_busy:
            for route in self._routes:
                try:
                    # Rows of records already delivered (their deletion failed) are not owed.
                    owed = self._spool.count(route.name) - len(route.unremoved)
                    spooled[route.name] = max(owed, 0)
                except Exception:  # noqa: BLE001 - a snapshot must not raise
                    spooled[route.name] = -1
        with self._lock:
            return FeedbackExportStats(
                received=self._received,
                resumed={r.name: r.resumed for r in self._routes},
                exported={r.name: r.exported for r in self._routes},
                dropped={r.name: dict(r.dropped) for r in self._routes},
                pending={
                    r.name: sum(len(p.records) for p in r.parcels if not p.on_disk)
                    for r in self._routes
                },
                spooled=spooled,
            )

    # -- flush and shutdown ----------------------------------------------------------------

    def flush(self, timeout_s: float, *, wait_for_down: bool = True) -> bool:
        """Deliver what is queued; ``True`` when nothing is left within ``timeout_s``.

        Routes whose endpoint is down are waited for (at their backoff) unless
        ``wait_for_down`` is false, as at exit.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if self._stopped:
                return True
            self._flushing += 1
            self._intake_cv.notify()
            try:
                while not self._settled(wait_for_down):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._progress_cv.wait(left)
                return all(r.idle for r in self._routes)
            finally:
                self._flushing -= 1

    def _settled(self, wait_for_down: bool) -> bool:
        if self._queue or self._intake_busy:
            return False
        return all(r.idle or (r.down and not wait_for_down) for r in self._routes)

    def shutdown(self, timeout_s: float) -> None:
        """Deliver what can be within ``timeout_s``; then spool or count the rest. Stop."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if self._final_deadline is not None:
                return
            self._final_deadline = deadline
            self._intake_cv.notify_all()
            self._progress_cv.notify_all()
            said = False
            while not self._all_finished():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not said and timeout_s - left >= _SAY_AFTER_S:
                    said = True
                    logger.warning(
                        "Still delivering %d feedback record(s) before shutdown; waiting at "
                        "most %.1fs more",
                        len(self._queue) + sum(r.held + r.in_flight for r in self._routes),
                        left,
                    )
                self._progress_cv.wait(min(left, _SAY_AFTER_S))
            self._stopped = True
            self._progress_cv.notify_all()
            self._intake_cv.notify_all()
            self._account_for_leftovers()
        for route in self._routes:
            try:
                route.exporter.shutdown()
            except Exception:  # noqa: BLE001 - shutting down must reach every exporter
                logger.warning("Feedback exporter %s raised on shutdown", route.name, exc_info=True)
        self._losses.flush()
        if self._spool is not None:
            self._next_file_check = 0.0
            self._check_spool_file()
            self._retry_removals()
            undeleted = sum(len(route.unremoved) for route in self._routes)
            if undeleted:
                logger.warning(
                    "%d delivered feedback record(s) could not be deleted from the spool %s "
                    "(is the disk full?); the next process that opens it sends them again",
                    undeleted,
                    self._spool.path,
                )
            spooled = sum(self.stats().spooled.values())
            if spooled and self._next_file_check:
                logger.warning(
                    "%d feedback record(s) stay in the deleted spool %s and are lost when this "
                    "process ends: no new file could be made there",
                    spooled,
                    self._spool.path,
                )
            elif spooled:
                logger.warning(
                    "%d feedback record(s) wait in the spool %s for the next start",
                    spooled,
                    self._spool.path,
                )

    def _all_finished(self) -> bool:
        return self._intake_done and all(r.finished and not r.in_flight for r in self._routes)

    def _account_for_leftovers(self) -> None:
        # Called with the lock held, once the deadline passed or every route is finished.
        if self._queue:
            count = len(self._queue)
            self._queue.clear()
            self._received += count
            for route in self._routes:
                self._lost(route, count, "still queued when the shutdown deadline passed")
        for route in self._routes:
            if route.flying is not None and not route.flying.on_disk:
                # Still with the exporter when the deadline passed: whatever it answers
                # later is not counted again.
                self._lost(route, len(route.flying.records), "still being sent at the deadline")
            route.flying = None
            off_disk = [p for p in route.parcels if not p.on_disk]
            route.parcels.clear()
            route.held = 0
            if route.down:
                state = "unreachable at shutdown"
            elif route.unready_since is not None:
                state = "not accepted by the endpoint by shutdown"
            else:
                state = "not done at shutdown"
            self._lost(route, sum(len(p.records) for p in off_disk), state)


@dataclass
class _Outcome:
    delivered: list[Feedback] = field(default_factory=list)
    retry: list[Feedback] = field(default_factory=list)
    refused: list[tuple[Feedback, str]] = field(default_factory=list)
    down: bool = False
    """The endpoint is unavailable (a whole-batch RETRY), not merely unready for some."""

    def add(self, other: _Outcome) -> _Outcome:
        self.delivered += other.delivered
        self.retry += other.retry
        self.refused += other.refused
        self.down = self.down or other.down
        return self


def _export_each(exporter: FeedbackExporter, batch: list[Feedback]) -> _Outcome:
    """Export ``batch`` and sort its records by what became of them.

    An exporter that raises is given each half of the batch in turn, down to single
    records, so that one record it cannot handle does not take the others with it.
    """
    try:
        outcome: Any = exporter.export(batch)
    except Exception as error:  # noqa: BLE001 - one bad record must not sink its batch
        if len(batch) == 1:
            logger.debug("%s raised on a record", type(exporter).__name__, exc_info=True)
            reason = f"the exporter raised {type(error).__name__}"
            return _Outcome(refused=[(batch[0], reason)])
        middle = math.ceil(len(batch) / 2)
        first = _export_each(exporter, batch[:middle])
        return first.add(_export_each(exporter, batch[middle:]))
    if outcome is FeedbackExportResult.SUCCESS:
        return _Outcome(delivered=batch)
    if outcome is FeedbackExportResult.RETRY:
        return _Outcome(retry=batch, down=True)
    if isinstance(outcome, PartialFeedbackExport):
        retry = list(outcome.retry)
        refused = list(outcome.refused)
        settled = {id(r) for r in retry} | {id(r) for r, _ in refused}
        return _Outcome([r for r in batch if id(r) not in settled], retry, refused)
    reason = (
        "the batch was refused"
        if outcome is FeedbackExportResult.FAILURE
        else f"the exporter answered {outcome!r}"
    )
    return _Outcome(refused=[(record, reason) for record in batch])


def _route_names(exporters: Sequence[FeedbackExporter]) -> list[tuple[str, FeedbackExporter]]:
    """A stable name per exporter: its class, numbered when the class repeats."""
    seen: Counter[str] = Counter()
    named = []
    for exporter in exporters:
        base = type(exporter).__name__
        seen[base] += 1
        named.append((base if seen[base] == 1 else f"{base}#{seen[base]}", exporter))
    return named


def _suppressed() -> AbstractContextManager[None]:
    """Exports run with instrumentation suppressed: their own HTTP calls are not traced."""
    from opentelemetry.instrumentation.utils import (  # noqa: PLC0415 - needed by workers only
        suppress_instrumentation,
    )

    return suppress_instrumentation()
