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
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from otel_feedback._model import Feedback, with_run_attributes

__all__ = ["Spool", "SpoolError", "SpoolFullError", "SpooledRecord"]

_TABLE = "otel_feedback_spool"
_COLUMNS = ("id", "route", "owner", "spooled_at", "body")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS otel_feedback_spool (
    id TEXT NOT NULL,
    route TEXT NOT NULL,
    owner TEXT NOT NULL,
    spooled_at REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (id, route)
)
"""
_BUSY_TIMEOUT_S = 5.0
_OPEN_RETRY_S = 2.0


class SpoolError(Exception):
    """The spool file cannot be used; the message says why."""


class SpoolFullError(Exception):
    """The spool holds ``max_records`` rows: nothing more is written until some leave."""


class SpooledRecord(NamedTuple):
    """A record read back from the spool, with its row and when it was written."""

    rowid: int
    record: Feedback
    spooled_at: float


class Spool:
    """The spool in one sqlite file; every method is safe to call from several threads.

    Methods raise :class:`sqlite3.Error` or :class:`OSError` when the disk fails; the
    engine catches, counts and logs them.
    """

    def __init__(self, path: str, *, max_records: int, max_age_s: float) -> None:
        """Open (or create) the spool at ``path``.

        Raises:
            SpoolError: the file cannot be opened or created, is not an sqlite database, or
                holds a table of this name with another shape.
        """
        self.path = path
        self.max_records = max_records
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._owner = _owner()
        try:
            self._connection = self._connect_patiently()
            self._file = _identity(path)
            self._rows = self._count_rows()
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(_describe(path, error)) from error

    def _connect_patiently(self) -> sqlite3.Connection:
        # Two processes opening a new file at once race to switch it to WAL, and sqlite
        # answers "locked" at once rather than waiting: try again, briefly.
        deadline = time.monotonic() + _OPEN_RETRY_S
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as error:
                locked = "locked" in str(error) or "busy" in str(error)
                if not locked or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)  # another process holds the file for a moment

    def _connect(self) -> sqlite3.Connection:
        if os.path.isdir(self.path):
            raise SpoolError(f"{self.path} is a directory, not a file")
        connection = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT_S
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            columns = tuple(
                row[1] for row in connection.execute("PRAGMA table_info(otel_feedback_spool)")
            )
            if columns != _COLUMNS:
                raise SpoolError(
                    f"{self.path} has a table {_TABLE} with the columns "
                    f"{', '.join(columns)}, not {', '.join(_COLUMNS)}"
                )
            # A file that opens but cannot be written (read-only, another user's) fails here,
            # at start, rather than on every record later.
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except BaseException:
            connection.close()
            raise
        return connection

    def _count_rows(self) -> int:
        with self._lock:
            (count,) = self._connection.execute(
                "SELECT COUNT(*) FROM otel_feedback_spool"
            ).fetchone()
        return int(count)

    def reopen(self) -> None:
        """A fresh connection and owner, in a forked child (a connection must not cross a fork)."""
        self._lock = threading.Lock()
        self._owner = _owner()
        self._connection = self._connect_patiently()
        self._file = _identity(self.path)

    def recover_if_gone(self) -> int | None:
        """Move this process's rows to a new file when the spool's file was deleted or replaced.

        An open sqlite file that is deleted (a temporary-file cleaner, a hand) goes on taking
        writes, into a file nobody can open again: its rows would be lost when the process
        ends. Costs one ``stat`` when nothing is wrong.

        Returns:
            None when the file is the one opened; else how many rows were moved.

        Raises:
            SpoolError: no new file can be made there; the rows stay in the deleted one,
                which this process still reads and writes.
        """
        with self._lock:
            if _identity(self.path) == self._file:
                return None
            rows = self._connection.execute(
                "SELECT id, route, owner, spooled_at, body FROM otel_feedback_spool "
                "WHERE owner = ?",
                (self._owner,),
            ).fetchall()
            try:
                with _directory_lock(self.path):
                    if _identity(self.path) is None:
                        # The file is gone; a -wal or -shm left beside it belongs to the
                        # deleted database (processes that still use it hold their own open
                        # handles): a new database must not adopt them.
                        for suffix in ("-wal", "-shm"):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(self.path + suffix)
                    fresh = self._connect_patiently()
                with _transaction(fresh):
                    fresh.executemany(
                        "INSERT OR REPLACE INTO otel_feedback_spool "
                        "(id, route, owner, spooled_at, body) VALUES (?, ?, ?, ?, ?)",
                        rows,
                    )
                (count,) = fresh.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone()
            except (sqlite3.Error, OSError) as error:
                raise SpoolError(_describe(self.path, error)) from error
            self._connection.close()
            self._connection = fresh
            self._file = _identity(self.path)
            self._rows = int(count)
        return len(rows)

    def take_over(self) -> Counter[str]:
        """Own the rows of processes that are no longer running; return them per route."""
        with self._lock:
            owners = [
                owner
                for (owner,) in self._connection.execute(
                    "SELECT DISTINCT owner FROM otel_feedback_spool WHERE owner != ?",
                    (self._owner,),
                )
            ]
            taken: Counter[str] = Counter()
            with _transaction(self._connection):
                for owner in owners:
                    if _running(owner):
                        continue
                    for route, count in self._connection.execute(
                        "SELECT route, COUNT(*) FROM otel_feedback_spool WHERE owner = ? "
                        "GROUP BY route",
                        (owner,),
                    ).fetchall():
                        taken[route] += int(count)
                    self._connection.execute(
                        "UPDATE otel_feedback_spool SET owner = ? WHERE owner = ?",
                        (self._owner, owner),
                    )
        return taken

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
            with _transaction(self._connection):
                cursor = self._connection.executemany(
                    "INSERT OR REPLACE INTO otel_feedback_spool "
                    "(id, route, owner, spooled_at, body) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            self._rows += max(cursor.rowcount, 0)
        return fit

    def expire(self) -> Counter[str]:
        """Delete this process's rows older than ``max_age_s``; return them per route."""
        limit = time.time() - self.max_age_s
        with self._lock, _transaction(self._connection):
            expired = Counter(
                {
                    route: int(count)
                    for route, count in self._connection.execute(
                        "SELECT route, COUNT(*) FROM otel_feedback_spool "
                        "WHERE owner = ? AND spooled_at < ? GROUP BY route",
                        (self._owner, limit),
                    )
                }
            )
            self._connection.execute(
                "DELETE FROM otel_feedback_spool WHERE owner = ? AND spooled_at < ?",
                (self._owner, limit),
            )
            self._rows = int(
                self._connection.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone()[0]
            )
        return expired

    def expire_route(self, route: str, *, keep: set[str]) -> int:
        """Delete this process's rows for ``route`` older than ``max_age_s``; how many.

        Rows whose ids are in ``keep`` stay (their route counts them elsewhere: delivered
        records whose deletion failed).
        """
        limit = time.time() - self.max_age_s
        with self._lock, _transaction(self._connection):
            old = [
                record_id
                for (record_id,) in self._connection.execute(
                    "SELECT id FROM otel_feedback_spool "
                    "WHERE owner = ? AND route = ? AND spooled_at < ?",
                    (self._owner, route, limit),
                )
                if record_id not in keep
            ]
            cursor = self._connection.executemany(
                "DELETE FROM otel_feedback_spool WHERE id = ? AND route = ? AND owner = ?",
                [(record_id, route, self._owner) for record_id in old],
            )
            self._rows -= max(cursor.rowcount, 0)
        return len(old)

    def remove(self, ids: Iterable[str], route: str) -> None:
        """``route`` is done with the records of these ids: delivered, or refused for good."""
        with self._lock, _transaction(self._connection):
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
            rows = self._connection.execute(
                "SELECT rowid, id, body, spooled_at FROM otel_feedback_spool "
                "WHERE route = ? AND owner = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                (route, self._owner, after, limit),
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
            row = self._connection.execute(
                "SELECT COUNT(*) FROM otel_feedback_spool WHERE route = ? AND owner = ?",
                (route, self._owner),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._connection.close()


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


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One transaction: every statement inside commits together, or none does.

    The connection is in autocommit mode (``isolation_level=None``), where the sqlite3
    module's own ``with connection`` commits each statement alone: a failure half-way (a
    full disk) would leave half a batch written, and every row would cost its own commit.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _directory_lock(path: str) -> Iterator[None]:
    """The spool's directory locked, so that processes sharing a deleted spool make one new file.

    Raises:
        OSError: the directory is gone.
    """
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows: one process per spool file there
        yield
        return
    descriptor = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _identity(path: str) -> tuple[int, int] | None:
    """Which file ``path`` names now (device and inode); None when there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _owner() -> str:
    """This process, as the rows it writes name it: its pid and a token of this instance."""
    return f"{os.getpid()}:{uuid.uuid4().hex}"


def _running(owner: str) -> bool:
    """Whether the process that wrote rows as ``owner`` still runs (on this machine)."""
    pid_text, _, _ = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False  # rows of an older format: nobody owns them any more
    if pid == os.getpid():
        return False  # an earlier instance in this process, or a parent before a fork
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process, alive
    return True


def _describe(path: str, error: BaseException) -> str:
    if isinstance(error, SpoolError):
        return str(error)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"{path}: the directory {directory} does not exist"
    return f"{path}: {error}"
