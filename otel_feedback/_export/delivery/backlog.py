"""Where records wait for their exporter: in memory (per route), or in the spool (shared).

:class:`MemoryBacklog` is one route's records that are not on disk, oldest first, bounded by
its owner. :class:`SpoolKeeper` is the one place that talks to the spool for the engine: it
opens it off the application's thread, writes, reads back, deletes, and keeps it (its file,
its age bound, the rows of processes that ended), and says once, not on every record, when
the disk refuses and when it takes writes again. It never raises: the disk failing turns
into records waiting in memory and a warning.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from otel_feedback._export.delivery import forkgate
from otel_feedback._export.spool import Spool, SpoolError, SpoolFullError
from otel_feedback._log import logger, warn_once
from otel_feedback._model import Feedback

__all__ = ["MemoryBacklog", "Parcel", "SpoolKeeper", "SpoolRead"]

# How often the spool's upkeep runs (its file checked, its age bound applied, the rows of
# ended processes taken over).
UPKEEP_EVERY_S = 60.0
# How often records the spool refused are offered to it again while it refuses.
RETRY_WRITE_EVERY_S = 1.0
# Per route: ids of delivered records whose rows the disk refused to delete. Past this, such
# rows are sent again by a later pass or process (at least once) rather than held without end.
MAX_UNREMOVED = 100_000


@dataclass
class Parcel:
    """Records that arrived together, and when (monotonic clock)."""

    records: list[Feedback]
    arrived: float


class MemoryBacklog:
    """One route's records in memory, oldest first; only its route touches it."""

    def __init__(self) -> None:
        self._parcels: deque[Parcel] = deque()
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, parcel: Parcel) -> None:
        """Records that arrived last."""
        if parcel.records:
            self._parcels.append(parcel)
            self.count += len(parcel.records)

    def put_back(self, parcel: Parcel) -> None:
        """Records taken and not delivered: first again."""
        if parcel.records:
            self._parcels.appendleft(parcel)
            self.count += len(parcel.records)

    def take(self, limit: int) -> Parcel:
        """Up to ``limit`` of the oldest records, as one parcel (arrived = the oldest's)."""
        taken = Parcel([], time.monotonic())
        while self._parcels and len(taken.records) < limit:
            parcel = self._parcels[0]
            taken.arrived = min(taken.arrived, parcel.arrived)
            want = limit - len(taken.records)
            if len(parcel.records) <= want:
                self._parcels.popleft()
                taken.records += parcel.records
            else:
                taken.records += parcel.records[:want]
                parcel.records = parcel.records[want:]
        self.count -= len(taken.records)
        return taken

    def take_all(self) -> Parcel:
        """Every record."""
        return self.take(self.count)

    def oldest(self) -> float | None:
        """When the oldest record arrived."""
        return self._parcels[0].arrived if self._parcels else None


@dataclass
class SpoolRead:
    """A batch read back from the spool: records, their rows' range, when each was written."""

    records: list[Feedback]
    first_rowid: int
    last_rowid: int
    spooled_at: dict[int, float]
    """By ``id()`` of the record: when its row was written (wall clock)."""


class SpoolKeeper:
    """The engine's one handle on the spool; safe from several threads; never raises."""

    def __init__(self, path: str, opener: Callable[[], Spool]) -> None:
        self.path = path
        self._opener: Callable[[], Spool] | None = opener
        self._spool: Spool | None = None
        self._opened = threading.Event()
        self._refusing = False  # the last write failed (disk full, spool full, I/O error)
        self._next_write_try = 0.0
        self.upkeep_every_s = UPKEEP_EVERY_S
        self._next_upkeep = time.monotonic() + self.upkeep_every_s
        self._file_lost = False
        self._next_file_check = 0.0

    # -- opening -----------------------------------------------------------------------

    def open(self) -> bool:
        """Open the spool (on a background thread: it may wait on another process's lock)."""
        if self._opener is None:
            return False
        try:
            self._spool = self._opener()
        except SpoolError as error:
            logger.warning("%s; running without one", error)
        except Exception:  # noqa: BLE001 - the application runs on without a spool
            logger.warning(
                "Cannot use the feedback spool %s; running without one",
                self.path,
                exc_info=True,
            )
        return self._spool is not None

    def mark_opened(self) -> None:
        """The opening is over (the rows of ended processes taken over, or the spool refused)."""
        self._opened.set()

    @property
    def opened(self) -> bool:
        """Whether the opening is over, either way."""
        return self._opened.is_set()

    def reopen_after_fork(self) -> None:
        """In a forked child: open again as a new owner, from the background."""
        old, self._spool = self._spool, None
        self._opened.clear()
        self._refusing = False
        if old is None:
            self._opener = None
            return

        def reopen() -> Spool:
            try:
                old.reopen()
            except Exception as error:
                raise SpoolError(
                    f"the feedback spool {self.path} cannot be opened in this forked process "
                    f"({error}), which delivers without one"
                ) from error
            return old

        self._opener = reopen

    @property
    def usable(self) -> bool:
        """Opened and usable (records may still be refused by a full disk)."""
        return self._spool is not None

    @property
    def takes_writes(self) -> bool:
        """Usable, and its last write succeeded (or it is time to try again)."""
        return self._spool is not None and (
            not self._refusing or time.monotonic() >= self._next_write_try
        )

    # -- writing and reading -----------------------------------------------------------

    def write(self, records: Sequence[Feedback], routes: Sequence[str]) -> int:
        """Write ``records`` (from the first) for each of ``routes``; how many it took."""
        spool = self._spool
        if spool is None or not records:
            return 0
        try:
            with forkgate.inside():
                written = spool.put(records, routes)
        except SpoolFullError:
            written = 0
            self._refused(f"it is full ({spool.max_records} rows)")
        except Exception as error:  # noqa: BLE001 - a failing disk must not stop the export
            written = 0
            self._refused(f"{type(error).__name__}: {error}")
        else:
            if written < len(records):
                self._refused(f"it is full ({spool.max_records} rows)")
            elif self._refusing:
                self._refusing = False
                logger.warning(
                    "The feedback spool %s takes records again; those that waited in memory "
                    "are written to it",
                    self.path,
                )
        return written

    def _refused(self, why: str) -> None:
        self._next_write_try = time.monotonic() + RETRY_WRITE_EVERY_S
        if not self._refusing:
            self._refusing = True
            logger.warning(
                "The feedback spool %s takes no more records (%s); new records wait in memory "
                "and are written as soon as it takes them again",
                self.path,
                why,
            )

    def read(
        self, route: str, limit: int, *, after: int, skip: set[str]
    ) -> tuple[SpoolRead | None, list[str]]:
        """Up to ``limit`` of ``route``'s rows past row ``after``, minus ids in ``skip``.

        Returns:
            The batch (None when no row is left past ``after``), and the ids of rows that
            could not be read back, already deleted.
        """
        spool = self._spool
        if spool is None:
            return None, []
        try:
            while True:
                with forkgate.inside():
                    rows, unreadable = spool.oldest(route, limit, after=after)
                if unreadable:
                    spool.remove(unreadable, route)
                if not rows:
                    return None, unreadable
                kept = [row for row in rows if str(row.record.id) not in skip]
                if kept or unreadable:
                    return SpoolRead(
                        [row.record for row in kept],
                        rows[0].rowid,
                        rows[-1].rowid,
                        {id(row.record): row.spooled_at for row in kept},
                    ), unreadable
                after = rows[-1].rowid
        except Exception:  # noqa: BLE001 - a failing disk must not stop the export
            warn_once(f"spool-read:{self.path}", "Could not read the spool %s", self.path)
            return None, []

    def remove(self, route: str, ids: list[str]) -> bool:
        """Delete ``route``'s rows of these records; False when the disk refused."""
        spool = self._spool
        if spool is None or not ids:
            return True
        try:
            spool.remove(ids, route)
        except Exception:  # noqa: BLE001 - a full disk must not stop the export
            warn_once(
                f"spool-remove:{self.path}",
                "Could not delete delivered records from the feedback spool %s (is the disk "
                "full?); tried again later",
                self.path,
            )
            return False
        return True

    def expire(self, route: str, *, keep: Iterable[str]) -> int:
        """Delete ``route``'s rows older than the spool's age bound; how many."""
        spool = self._spool
        if spool is None:
            return 0
        try:
            return spool.expire_route(route, keep=set(keep))
        except Exception:  # noqa: BLE001 - a failing disk must not stop the export
            warn_once(f"spool-expire:{self.path}", "Could not expire the spool %s", self.path)
            return 0

    @property
    def max_age_s(self) -> float:
        """The spool's age bound."""
        return self._spool.max_age_s if self._spool is not None else float("inf")

    # -- upkeep ------------------------------------------------------------------------

    def upkeep_due(self) -> bool:
        """Whether the periodic upkeep should run now."""
        return self._spool is not None and time.monotonic() >= self._next_upkeep

    def take_over(self) -> Counter[str]:
        """Own the rows left by processes that no longer run; how many, per route."""
        spool = self._spool
        if spool is None:
            return Counter()
        try:
            return spool.take_over()
        except Exception:  # noqa: BLE001 - a failing disk must not stop the application
            warn_once(f"spool-read:{self.path}", "Could not read the spool %s", self.path)
            return Counter()

    def upkeep(self, orphans: Iterable[str]) -> Counter[str]:
        """Check the file, expire rows of routes not configured; take over ended processes'."""
        self._next_upkeep = time.monotonic() + self.upkeep_every_s
        self.check_file()
        for name in orphans:
            self.expire(name, keep=())
        return self.take_over()

    def check_file(self, *, now: bool = True) -> None:
        """Move the spool to a new file when its file was deleted or replaced while in use.

        One ``stat`` when nothing is wrong. With ``now`` false, and a new file could not be
        made at the last check, only once the upkeep interval has passed since.
        """
        spool = self._spool
        if spool is None or (not now and time.monotonic() < self._next_file_check):
            return
        self._next_file_check = 0.0
        try:
            moved = spool.recover_if_gone()
        except SpoolError as error:
            self._file_lost = True
            self._next_file_check = time.monotonic() + self.upkeep_every_s
            warn_once(
                f"spool-gone:{self.path}",
                "The feedback spool %s was deleted and no new file can be made there (%s); "
                "its records are kept only until this process ends",
                self.path,
                error,
            )
            return
        except Exception:  # noqa: BLE001 - a failing disk must not stop the export
            self._next_file_check = time.monotonic() + self.upkeep_every_s
            warn_once(f"spool-read:{self.path}", "Could not read the spool", exc_info=True)
            return
        self._file_lost = False
        if moved is not None:
            logger.warning(
                "The feedback spool %s was deleted or replaced while in use; this process's "
                "%d waiting record row(s) were written to a new file there",
                self.path,
                moved,
            )

    def say_what_waits(self, spooled: int, undeleted: int) -> None:
        """At shutdown: what stays on disk, and what could not be deleted."""
        if undeleted:
            logger.warning(
                "%d delivered feedback record(s) could not be deleted from the spool %s "
                "(is the disk full?); the next process that opens it sends them again",
                undeleted,
                self.path,
            )
        if spooled and self._file_lost:
            logger.warning(
                "%d feedback record(s) stay in the deleted spool %s and are lost when this "
                "process ends: no new file could be made there",
                spooled,
                self.path,
            )
        elif spooled:
            logger.warning(
                "%d feedback record(s) wait in the spool %s for the next start", spooled, self.path
            )

    def wait_opened(self, timeout_s: float) -> bool:
        """Wait until the background open has finished (either way)."""
        return self._opened.wait(timeout_s)
