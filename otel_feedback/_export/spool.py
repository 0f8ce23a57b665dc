"""The optional on-disk spool (sqlite): records outlive a crash or a long outage.

One row per record and exporter ("route") that still owes it. The engine writes a record
here as soon as its background thread takes it from the queue, before any export, and
deletes the row when that exporter delivered it or refused it for good. What cannot wait in
memory (the queue or a backlog is full, an endpoint is down for longer than
``retry_for_millis``, the process shuts down while an endpoint is down) simply stays here and
is read back, oldest first, once the exporter takes batches again: in the running process,
or after a restart.

Commits use ``synchronous=NORMAL`` in WAL mode: a committed row survives the process being
killed; an operating-system crash or power loss may lose the last commits.

Bounds: at most ``max_records`` rows (a full spool takes no new rows: they wait in memory,
like records without a spool) and ``max_age_s`` of age (older rows are deleted and reported
to the caller, which counts them as dropped).

Several processes may share one file. Each row names the process that wrote it; a process
reads back only its own rows, and takes over the rows of processes that are no longer
running (at start, and then every minute), so that a record left by a process that died is
sent by the next one. Delivery is at least once; receivers de-duplicate on the feedback id.
Taking rows over rewrites their owner, which needs free disk: when that fails (a full disk),
the rows are adopted in memory instead (this process reads, sends and deletes them as its
own) and a warning says so. A lock on a byte of the file far past its end, one per adopted
owner, keeps two live processes from adopting the same rows; it takes no disk space.
A disk so full that sqlite cannot make the ``-shm`` beside a spool closed cleanly would keep
the spool from opening at all: the spool is then opened alone (exclusive locking, the WAL's
index in memory), its rows still delivered, other processes kept out meanwhile, and it is
opened for sharing again at a later take-over pass once there is room.

The spool holds what users wrote (comments, user ids) and what will be sent with the
application's credentials, so it is private: the file and its ``-wal`` and ``-shm`` are 0600
whatever the umask, a directory made for it is 0700, and a file or directory that is a
symbolic link, is owned by another user, or is writable by group or others is refused
before sqlite ever opens it (sqlite would follow a link to another database, switch it to
WAL and add its table there).

This module keeps the rows (write, read back, expire, remove). The rest lives beside it:
``_spool_sqlite`` opens the file, shared or alone, and makes a new one for a deleted file;
``_private_file`` checks the file and its directory before sqlite opens them;
``_spool_adoption`` takes over the rows of ended processes, with the owners and claims of
``_spool_claims``; ``_spool_errors`` holds the errors.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from otel_feedback._export._spool_adoption import own_adopted, owners_json, take_over_ended
from otel_feedback._export._spool_claims import new_owner
from otel_feedback._export._spool_errors import SpoolError, SpoolFullError
from otel_feedback._export._spool_sqlite import (
    INSERT,
    describe,
    identity,
    open_anew,
    open_spool,
    share_again,
    transaction,
)
from otel_feedback._log import logger
from otel_feedback._model import Feedback, with_run_attributes

__all__ = ["Spool", "SpoolError", "SpoolFullError", "SpooledRecord"]


class SpooledRecord(NamedTuple):
    """A record read back from the spool, with its row and when it was written."""

    rowid: int
    record: Feedback
    spooled_at: float


class Spool:
    """The spool in one sqlite file; every method is safe to call from several threads.

    Methods raise :class:`sqlite3.Error` or :class:`OSError` when the disk fails (a full
    disk included); a failed write leaves nothing half done, and writes succeed again once
    there is room. The engine catches, counts and logs them.
    """

    def __init__(self, path: str, *, max_records: int, max_age_s: float) -> None:
        """Open (or create) the spool at ``path``; a missing directory is made, mode 0700.

        Raises:
            SpoolError: naming the path and the reason: the file or its directory is a
                symbolic link, is owned by another user or is writable by group or others;
                the file cannot be opened or created, is not an sqlite database, or holds a
                table of this name with another shape.
        """
        self.path = path
        self.max_records = max_records
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._owner = new_owner()
        # Owners of dead processes whose rows this spool reads as its own without having
        # rewritten them (a full disk): see take_over. Each holds a claim on the file.
        self._adopted: set[str] = set()
        try:
            self._handle, self._connection, self._alone = open_spool(path, make_directory=True)
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(describe(path, error)) from error
        try:
            self._file = identity(path)
            self._rows = self._count_rows()
        except (sqlite3.Error, OSError) as error:
            self.close()
            raise SpoolError(describe(path, error)) from error

    def _count_rows(self) -> int:
        with self._lock:
            (count,) = self._connection.execute(
                "SELECT COUNT(*) FROM otel_feedback_spool"
            ).fetchone()
        return int(count)

    def reopen(self) -> None:
        """A fresh connection and owner, in a forked child (a connection must not cross a fork).

        Raises:
            SpoolError: as the constructor, but for a missing directory, which is not made
                again.
        """
        self._lock = threading.Lock()
        self._owner = new_owner()
        # The parent's adopted rows stay the parent's: its claims live on in the file
        # description the parent keeps open, which closing the child's copy leaves alone.
        self._adopted = set()
        with contextlib.suppress(OSError):
            self._handle.close()
        try:
            self._handle, self._connection, self._alone = open_spool(
                self.path, make_directory=False
            )
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(describe(self.path, error)) from error
        self._file = identity(self.path)

    def recover_if_gone(self) -> int | None:
        """Move this process's rows to a new file when the spool's file was deleted or replaced.

        An open sqlite file that is deleted (a temporary-file cleaner, a hand) goes on taking
        writes, into a file nobody can open again: its rows would be lost when the process
        ends. Costs one ``stat`` when nothing is wrong. Rows adopted in memory move too, as
        this process's own.

        Returns:
            None when the file is the one opened; else how many rows were moved.

        Raises:
            SpoolError: no new file can be made there (or the new one is refused); the rows
                stay in the deleted one, which this process still reads and writes.
        """
        with self._lock:
            if identity(self.path) == self._file:
                return None
            owners = self._owners()
            rows = [
                (record_id, route, self._owner, spooled_at, body)
                for record_id, route, spooled_at, body in self._connection.execute(
                    "SELECT id, route, spooled_at, body FROM otel_feedback_spool "
                    "WHERE owner IN (SELECT value FROM json_each(?))",
                    (owners,),
                ).fetchall()
            ]
            handle, fresh, alone, count = open_anew(self.path, rows)
            self._connection.close()
            self._handle.close()  # after its connection (see close); drops the claims too
            self._connection, self._handle, self._alone = fresh, handle, alone
            self._adopted = set()
            self._file = identity(self.path)
            self._rows = count
        return len(rows)

    def take_over(self) -> Counter[str]:
        """Own the rows of processes that are no longer running; return them per route.

        Owning rewrites the rows' owner. When that fails (a full disk, a file locked too
        long), the rows are adopted in memory: :meth:`oldest`, :meth:`count`,
        :meth:`remove` and :meth:`expire` cover them as this process's own, a warning says
        so, and later calls try the rewrite again. Rows already adopted by another live
        process are left to it.

        A spool opened alone for want of disk space is first opened for sharing again, if
        there is room now.

        Raises:
            sqlite3.Error, OSError: the spool cannot even be read.
        """
        with self._lock:
            if self._alone:
                self._connection, self._alone = share_again(self.path, self._connection)
            descriptor = self._handle.fileno()
            own_adopted(self._connection, descriptor, self._owner, self._adopted)
            taken, failures = take_over_ended(
                self._connection, descriptor, self._owner, self._adopted
            )
        if failures:
            logger.warning(
                "Could not take over the rows of ended processes in the spool %s (%s); "
                "this process sends and deletes them without owning them on disk until it "
                "can: %d row(s)",
                self.path,
                failures[0],
                sum(taken.values()),
            )
        return taken

    def _owners(self) -> str:
        """Whose rows this process reads as its own, as a JSON list for ``json_each``."""
        return owners_json(self._owner, self._adopted)

    def put(
        self, records: Sequence[Feedback], routes: Sequence[str], *, partial: bool = True
    ) -> int:
        """Keep ``records`` for each of ``routes``, in one transaction, as far as they fit.

        With ``partial`` false, all of them or none.

        Returns:
            How many of ``records`` (from the first) were written.

        Raises:
            SpoolFullError: not even the first record fits within ``max_records``.
        """
        now = time.time()
        with self._lock:
            fit = min(len(records), max(0, self.max_records - self._rows) // max(len(routes), 1))
            if (fit == 0 and records) or (not partial and fit < len(records)):
                raise SpoolFullError(f"{self.path} holds {self._rows} of {self.max_records} rows")
            rows = [
                (str(record.id), route, self._owner, now, body)
                for record in records[:fit]
                for body in (_body_of(record),)
                for route in routes
            ]
            with transaction(self._connection):
                cursor = self._connection.executemany(INSERT, rows)
            self._rows += max(cursor.rowcount, 0)
        return fit

    def expire(self) -> Counter[str]:
        """Delete this process's rows older than ``max_age_s``; return them per route."""
        limit = time.time() - self.max_age_s
        with self._lock:
            self._rows, expired = self._expire(limit)
        return expired

    def _expire(self, limit: float) -> tuple[int, Counter[str]]:
        """With the lock held: the rows left and those deleted as older than ``limit``."""
        with transaction(self._connection):
            owners = self._owners()
            expired = Counter(
                {
                    route: int(count)
                    for route, count in self._connection.execute(
                        "SELECT route, COUNT(*) FROM otel_feedback_spool "
                        "WHERE owner IN (SELECT value FROM json_each(?)) AND spooled_at < ? "
                        "GROUP BY route",
                        (owners, limit),
                    )
                }
            )
            self._connection.execute(
                "DELETE FROM otel_feedback_spool "
                "WHERE owner IN (SELECT value FROM json_each(?)) AND spooled_at < ?",
                (owners, limit),
            )
            (rows,) = self._connection.execute(
                "SELECT COUNT(*) FROM otel_feedback_spool"
            ).fetchone()
        return int(rows), expired

    def expire_route(self, route: str, *, keep: set[str]) -> int:
        """Delete this process's rows for ``route`` older than ``max_age_s``; how many.

        Rows whose ids are in ``keep`` stay (their route counts them elsewhere: delivered
        records whose deletion failed).
        """
        limit = time.time() - self.max_age_s
        with self._lock, transaction(self._connection):
            old = [
                (rowid, record_id)
                for rowid, record_id in self._connection.execute(
                    "SELECT rowid, id FROM otel_feedback_spool WHERE route = ? "
                    "AND owner IN (SELECT value FROM json_each(?)) AND spooled_at < ?",
                    (route, self._owners(), limit),
                )
                if record_id not in keep
            ]
            cursor = self._connection.executemany(
                "DELETE FROM otel_feedback_spool WHERE rowid = ?", [(rowid,) for rowid, _ in old]
            )
            self._rows -= max(cursor.rowcount, 0)
        return len(old)

    def remove(self, ids: Iterable[str], route: str) -> None:
        """``route`` is done with the records of these ids: delivered, or refused for good."""
        with self._lock:
            with transaction(self._connection):
                cursor = self._connection.executemany(
                    "DELETE FROM otel_feedback_spool WHERE id = ? AND route = ?",
                    [(i, route) for i in ids],
                )
            self._rows -= max(cursor.rowcount, 0)

    def oldest(
        self, route: str, limit: int, *, after: int = 0
    ) -> tuple[list[SpooledRecord], list[str]]:
        """Up to ``limit`` of this process's rows for ``route`` past row ``after``, oldest first.

        Returns:
            The records, and the ids of rows that could not be read back (the caller
            removes and counts them).
        """
        with self._lock:
            owners = self._owners()
            rows = self._connection.execute(
                "SELECT rowid, id, body, spooled_at FROM otel_feedback_spool "
                "WHERE route = ? AND owner IN (SELECT value FROM json_each(?)) AND rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (route, owners, after, limit),
            ).fetchall()
        records, unreadable = [], []
        for rowid, record_id, body, spooled_at in rows:
            try:
                record = _record_of(body)
            except ValueError:
                unreadable.append(record_id)
                continue
            records.append(SpooledRecord(rowid, record, float(spooled_at)))
        return records, unreadable

    def count(self, route: str) -> int:
        """This process's rows for ``route``."""
        with self._lock:
            owners = self._owners()
            row = self._connection.execute(
                "SELECT COUNT(*) FROM otel_feedback_spool "
                "WHERE route = ? AND owner IN (SELECT value FROM json_each(?))",
                (route, owners),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the file; rows adopted in memory are left for the next process."""
        with self._lock:
            self._connection.close()
            # Only after the connection: closing a descriptor of the file drops every POSIX
            # lock this process holds on it.
            with contextlib.suppress(OSError):
                self._handle.close()
            self._adopted = set()


# The record's JSON, plus the judged span's run_attributes (not part of the record's JSON)
# under a key no record field has.
_RUN_KEY = "otel_feedback.run_attributes"


def _body_of(record: Feedback) -> str:
    body = record.model_dump_json()
    run = record.run_attributes
    if not run:
        return body
    return f'{body[:-1]},"{_RUN_KEY}":{json.dumps(dict(run))}}}'


def _record_of(body: str) -> Feedback:
    """The record of a row's body; ValueError when it is not one."""
    if _RUN_KEY not in body:
        return Feedback.model_validate_json(body)
    data = json.loads(body)
    run = data.pop(_RUN_KEY, None) if isinstance(data, dict) else None
    record = Feedback.model_validate(data)
    if not isinstance(run, dict) or not all(isinstance(v, str) for v in run.values()):
        return record
    return with_run_attributes(record, run)
