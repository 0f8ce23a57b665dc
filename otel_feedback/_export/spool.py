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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import stat
import struct
import sys
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from otel_feedback._log import logger
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


class _HeldFile:
    """A descriptor held open for the spool's life; closed once, by :meth:`close` or collection.

    Collected without a close, it closes quietly: a spool the engine drops is not an error.
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._close = weakref.finalize(self, _close_quietly, descriptor)

    def fileno(self) -> int:
        return self._descriptor

    def close(self) -> None:
        self._close()


def _close_quietly(descriptor: int) -> None:
    with contextlib.suppress(OSError):
        os.close(descriptor)


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
        self._owner = _owner()
        # Owners of dead processes whose rows this spool reads as its own without having
        # rewritten them (a full disk): see take_over. Each holds a claim on the file.
        self._adopted: set[str] = set()
        try:
            self._handle, self._connection, self._alone = self._open(make_directory=True)
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(_describe(path, error)) from error
        try:
            self._file = _identity(path)
            self._rows = self._count_rows()
        except (sqlite3.Error, OSError) as error:
            self.close()
            raise SpoolError(_describe(path, error)) from error

    def _open(self, *, make_directory: bool) -> tuple[_HeldFile, sqlite3.Connection, bool]:
        """The file, checked private and held open; a connection to it; whether it is alone.

        The file stays open as long as the spool (the claims are locks on it), and closes
        with :meth:`close`, or when the spool is collected.
        """
        descriptor = _open_private(self.path, make_directory=make_directory)
        try:
            connection, alone = self._connect_patiently()
            if _identity(self.path) != _identity_of(descriptor):
                connection.close()
                raise SpoolError(f"{self.path}: refused: the file was replaced while opened")
        except BaseException:
            # Only once sqlite has let go of the file: closing any descriptor of a file
            # drops every POSIX lock this process holds on it, sqlite's included.
            os.close(descriptor)
            raise
        return _HeldFile(descriptor), connection, alone

    def _connect_patiently(self) -> tuple[sqlite3.Connection, bool]:
        """A connection, and whether it had to be opened alone for want of disk space."""
        # Two processes opening a new file at once race to switch it to WAL, and sqlite
        # answers "locked" at once rather than waiting: try again, briefly.
        deadline = time.monotonic() + _OPEN_RETRY_S
        while True:
            try:
                return self._connect(), False
            except sqlite3.OperationalError as error:
                if _no_room(error):
                    return self._connect_alone(error), True
                locked = "locked" in str(error) or "busy" in str(error)
                if not locked or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)  # another process holds the file for a moment

    def _connect_alone(self, error: sqlite3.OperationalError) -> sqlite3.Connection:
        """A connection that needs no -shm file, for a disk with no room to make one.

        Its rows (and those of ended processes) are still delivered; meanwhile other
        processes cannot open the spool. :meth:`take_over` shares it again once it can.
        """
        try:
            connection = self._connect(alone=True)
        except sqlite3.Error:
            raise error from None  # the first reason is the one to tell
        logger.warning(
            "The spool %s cannot be opened for sharing (%s; is the disk full?): this process "
            "uses it alone, and other processes cannot open it, until there is room again",
            self.path,
            error,
        )
        return connection

    def _share_again(self) -> None:
        """With the lock held: the spool opened alone, opened for sharing where there is room."""
        # Two connections of one process would lock each other out: the one opened alone
        # goes first (sqlite writes its index back into the file if it can).
        self._connection.close()
        try:
            self._connection = self._connect()
        except sqlite3.Error:
            # Still no room: alone again. If that fails too, the next pass tries again and
            # the methods meanwhile raise sqlite3.Error.
            self._connection = self._connect(alone=True)
            return
        self._alone = False
        logger.info("The spool %s is shared with other processes again", self.path)

    def _connect(self, *, alone: bool = False) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT_S
        )
        try:
            if alone:
                # Set before the first read: sqlite then keeps the WAL's index in this
                # process's memory instead of the -shm file, and holds the file for itself.
                connection.execute("PRAGMA locking_mode=EXCLUSIVE")
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
        """A fresh connection and owner, in a forked child (a connection must not cross a fork).

        Raises:
            SpoolError: as the constructor, but for a missing directory, which is not made
                again.
        """
        self._lock = threading.Lock()
        self._owner = _owner()
        # The parent's adopted rows stay the parent's: its claims live on in the file
        # description the parent keeps open, which closing the child's copy leaves alone.
        self._adopted = set()
        with contextlib.suppress(OSError):
            self._handle.close()
        try:
            self._handle, self._connection, self._alone = self._open(make_directory=False)
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(_describe(self.path, error)) from error
        self._file = _identity(self.path)

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
            if _identity(self.path) == self._file:
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
            try:
                with _directory_lock(self.path):
                    if _identity(self.path) is None:
                        # The file is gone; a -wal or -shm left beside it belongs to the
                        # deleted database (processes that still use it hold their own open
                        # handles): a new database must not adopt them.
                        for suffix in ("-wal", "-shm"):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(self.path + suffix)
                    handle, fresh, alone = self._open(make_directory=False)
                try:
                    with _transaction(fresh):
                        fresh.executemany(
                            "INSERT OR REPLACE INTO otel_feedback_spool "
                            "(id, route, owner, spooled_at, body) VALUES (?, ?, ?, ?, ?)",
                            rows,
                        )
                    (count,) = fresh.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone()
                except BaseException:
                    fresh.close()
                    handle.close()  # after its connection (see close)
                    raise
            except (sqlite3.Error, OSError) as error:
                raise SpoolError(_describe(self.path, error)) from error
            self._connection.close()
            self._handle.close()  # after its connection (see close); drops the claims too
            self._connection, self._handle, self._alone = fresh, handle, alone
            self._adopted = set()
            self._file = _identity(self.path)
            self._rows = int(count)
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
                self._share_again()
            self._own_adopted()
            owners = self._owners()
            dead = [
                owner
                for (owner,) in self._connection.execute(
                    "SELECT DISTINCT owner FROM otel_feedback_spool "
                    "WHERE owner NOT IN (SELECT value FROM json_each(?))",
                    (owners,),
                ).fetchall()
                if not _running(owner)
            ]
            taken: Counter[str] = Counter()
            failures: list[str] = []
            for owner in dead:
                if not _claim(self._handle.fileno(), owner):
                    continue  # another live process has adopted them and sends them
                try:
                    counts, failure = self._take_over_one(owner)
                except BaseException:
                    _release(self._handle.fileno(), owner)
                    raise
                if failure is None or not counts:
                    _release(self._handle.fileno(), owner)
                else:
                    self._adopted.add(owner)
                    failures.append(failure)
                taken += counts
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

    def _take_over_one(self, owner: str) -> tuple[Counter[str], str | None]:
        """With the lock held: ``owner``'s rows per route, and why they stayed its, if so."""
        count_rows = (
            "SELECT route, COUNT(*) FROM otel_feedback_spool WHERE owner = ? GROUP BY route"
        )
        try:
            with _transaction(self._connection):
                counts = Counter(
                    {
                        route: int(count)
                        for route, count in self._connection.execute(count_rows, (owner,))
                    }
                )
                self._connection.execute(
                    "UPDATE otel_feedback_spool SET owner = ? WHERE owner = ?",
                    (self._owner, owner),
                )
        except sqlite3.OperationalError as error:  # full, locked, read-only: still readable
            counts = Counter(
                {
                    route: int(count)
                    for route, count in self._connection.execute(count_rows, (owner,))
                }
            )
            return counts, str(error)
        return counts, None

    def _own_adopted(self) -> None:
        """With the lock held: rewrite the owner of rows adopted in memory, where there is room."""
        for owner in sorted(self._adopted):
            try:
                with _transaction(self._connection):
                    self._connection.execute(
                        "UPDATE otel_feedback_spool SET owner = ? WHERE owner = ?",
                        (self._owner, owner),
                    )
            except sqlite3.OperationalError:
                return  # still no room: they stay adopted, and are read all the same
            self._adopted.discard(owner)
            _release(self._handle.fileno(), owner)

    def _owners(self) -> str:
        """Whose rows this process reads as its own (its owner and the owners it adopted).

        As a JSON list for ``json_each``: one query, whatever the number of owners.
        """
        return json.dumps([self._owner, *sorted(self._adopted)])

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
        with self._lock:
            self._rows, expired = self._expire(limit)
        return expired

    def _expire(self, limit: float) -> tuple[int, Counter[str]]:
        """With the lock held: the rows left and those deleted as older than ``limit``."""
        with _transaction(self._connection):
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
        with self._lock, _transaction(self._connection):
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
            with _transaction(self._connection):
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


# The file and the directory the spool makes: the owner's alone, whatever the umask.
_FILE_MODE = 0o600
_DIRECTORY_MODE = 0o700
# Bits that let other users change a file or a directory's entries.
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _refuse(path: str, reason: str) -> SpoolError:
    return SpoolError(f"{path}: refused: {reason}")


def _open_private(path: str, *, make_directory: bool) -> int:
    """A descriptor of the spool's file (read-write), made private or found private.

    The directory is checked first: once it is this user's and no one else can write in
    it, no one else can put a link or a file of theirs in place of the spool between this
    check and sqlite's opening of the path. A file made here is 0600 whatever the umask, and
    the -wal and -shm sqlite makes beside it take its mode.

    Raises:
        SpoolError: the path, the file, its -wal or -shm, or its directory is refused.
        OSError: the file cannot be made or opened.
    """
    if sys.platform == "win32":  # pragma: no cover - no modes nor owners to check there
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), _FILE_MODE)
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.basename(path):
        raise _refuse(path, "it names a directory, not a file")
    if make_directory:
        _make_directories(directory)
    directory_descriptor = _open_directory(path, directory)
    try:
        descriptor = _open_file(path, name, directory_descriptor)
        try:
            for suffix in ("-wal", "-shm"):
                _check_companion(path + suffix, name + suffix, directory_descriptor)
        except BaseException:
            os.close(descriptor)
            raise
    finally:
        os.close(directory_descriptor)
    return descriptor


def _make_directories(directory: str) -> None:
    """Make ``directory`` and its missing parents, each 0700 whatever the umask."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for made in reversed(missing):
        try:
            os.mkdir(made, _DIRECTORY_MODE)
        except FileExistsError:
            continue  # another process made it first: checked like any existing directory
        # The umask may have taken the owner's bits too; through a descriptor, so that a
        # link put in its place meanwhile is not followed.
        descriptor = os.open(made, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
        try:
            os.fchmod(descriptor, _DIRECTORY_MODE)
        finally:
            os.close(descriptor)


def _open_directory(path: str, directory: str) -> int:
    """A descriptor of the spool's directory, once found to be a private one of this user."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as error:
        if os.path.islink(directory):
            raise _refuse(
                path, f"its directory {directory} is a symbolic link (to {os.readlink(directory)})"
            ) from None
        if error.errno == errno.ENOTDIR:
            raise _refuse(path, f"{directory} is not a directory") from None
        raise
    try:
        status = os.fstat(descriptor)
        if status.st_uid not in (os.geteuid(), 0):
            raise _refuse(
                path,
                f"its directory {directory} is owned by another user (uid {status.st_uid}, "
                f"this process runs as uid {os.geteuid()}); that user could replace the spool",
            )
        if status.st_mode & _WRITABLE_BY_OTHERS:
            raise _refuse(
                path,
                f"its directory {directory} is writable by group or others (mode "
                f"{stat.S_IMODE(status.st_mode):04o}); they could replace the spool: put it "
                "in a directory of the application's own",
            )
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _open_file(path: str, name: str, directory: int) -> int:
    """The spool's file in ``directory``, made 0600 or found to be a private one of this user."""
    flags = os.O_RDWR | _NOFOLLOW | _CLOEXEC
    try:
        descriptor = os.open(name, flags | os.O_CREAT | os.O_EXCL, _FILE_MODE, dir_fd=directory)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(descriptor, _FILE_MODE)  # the umask may have taken the owner's bits
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor
    status = _checked(path, name, directory)
    # Opened after the check: O_NOFOLLOW, and a non-blocking open, refuse a link or a pipe
    # put there meanwhile (by this user: no one else can write in the directory).
    descriptor = os.open(name, flags | os.O_NONBLOCK, dir_fd=directory)
    try:
        opened = os.fstat(descriptor)
        if (opened.st_dev, opened.st_ino) != (status.st_dev, status.st_ino):
            raise _refuse(path, "the file was replaced while it was checked")
        if stat.S_IMODE(opened.st_mode) != _FILE_MODE:
            # This user's own file, readable by others (as files made under the usual umask
            # are): made private. A -wal or -shm made later takes this mode.
            os.fchmod(descriptor, _FILE_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _check_companion(path: str, name: str, directory: int) -> None:
    """Check sqlite's -wal or -shm beside the spool, if there is one, and make it 0600."""
    try:
        status = _checked(path, name, directory)
    except FileNotFoundError:
        return
    if stat.S_IMODE(status.st_mode) != _FILE_MODE:
        os.chmod(name, _FILE_MODE, dir_fd=directory, follow_symlinks=False)


def _checked(path: str, name: str, directory: int) -> os.stat_result:
    """The status of ``name`` in ``directory``: a regular file of this user that only it writes.

    Raises:
        SpoolError: naming ``path`` and what is wrong.
        FileNotFoundError: there is no such file.
    """
    status = os.stat(name, dir_fd=directory, follow_symlinks=False)
    if stat.S_ISLNK(status.st_mode):
        target = os.readlink(name, dir_fd=directory)
        raise _refuse(
            path,
            f"it is a symbolic link (to {target}); sqlite would open and change what it points to",
        )
    if not stat.S_ISREG(status.st_mode):
        kind = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
        raise _refuse(path, f"it is {kind}")
    if status.st_uid != os.geteuid():
        raise _refuse(
            path,
            f"it is owned by another user (uid {status.st_uid}, this process runs as uid "
            f"{os.geteuid()}); its rows would be sent with this application's credentials",
        )
    if status.st_mode & _WRITABLE_BY_OTHERS:
        raise _refuse(
            path,
            f"it is writable by group or others (mode {stat.S_IMODE(status.st_mode):04o}); "
            "its rows may have been written or deleted by another user",
        )
    if status.st_nlink > 1:
        raise _refuse(
            path, f"it has {status.st_nlink} hard links; it may be another file's database"
        )
    return status


# Claims on the rows of dead processes adopted in memory: a write lock on one byte per
# owner, far past the end of the file and of the bytes sqlite locks (at 1 GiB), so that they
# take no disk space and never meet sqlite's locks. An open-file-description lock (Linux)
# also excludes another Spool of the same process; elsewhere a POSIX lock, per process.
_CLAIMS_AT = 1 << 40
_CLAIMS_SPAN = 1 << 30
_OFD_SETLK: int | None = None
with contextlib.suppress(ImportError):
    import fcntl

    _OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)


def _claim_offset(owner: str) -> int:
    digest = hashlib.blake2b(owner.encode(), digest_size=8).digest()
    return _CLAIMS_AT + int.from_bytes(digest, "big") % _CLAIMS_SPAN


def _lock_byte(descriptor: int, owner: str, *, lock: bool) -> None:
    import fcntl  # noqa: PLC0415 - POSIX only; imported at module load above where it exists

    offset = _claim_offset(owner)
    if _OFD_SETLK is not None:
        kind = fcntl.F_WRLCK if lock else fcntl.F_UNLCK
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for these locks).
        fcntl.fcntl(descriptor, _OFD_SETLK, struct.pack("hhqqi", kind, os.SEEK_SET, offset, 1, 0))
    else:  # pragma: no cover - systems without open-file-description locks
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB if lock else fcntl.LOCK_UN, 1, offset)


def _claim(descriptor: int, owner: str) -> bool:
    """Whether this spool may take ``owner``'s rows: no other live one has adopted them."""
    if sys.platform == "win32":  # pragma: no cover - one process per spool file there
        return True
    try:
        _lock_byte(descriptor, owner, lock=True)
    except (BlockingIOError, PermissionError):
        return False  # held: another spool adopted them and sends them
    except OSError:
        return True  # no locks on this file system: sent, perhaps twice (receivers de-duplicate)
    return True


def _release(descriptor: int, owner: str) -> None:
    if sys.platform == "win32":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        _lock_byte(descriptor, owner, lock=False)


# sqlite's primary result codes (``sqlite_errorcode`` holds them from Python 3.11).
_SQLITE_IOERR = 10
_SQLITE_FULL = 13


def _no_room(error: sqlite3.OperationalError) -> bool:
    """Whether sqlite failed as it does on a full disk: "full", or an I/O error (its -shm)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_IOERR, _SQLITE_FULL)
    return "disk is full" in str(error) or "disk I/O error" in str(error)


def _identity_of(descriptor: int) -> tuple[int, int]:
    status = os.fstat(descriptor)
    return status.st_dev, status.st_ino


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
