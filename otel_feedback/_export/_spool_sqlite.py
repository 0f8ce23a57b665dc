"""The spool's sqlite file: its table, its transactions, and opening it, shared or alone.

The file is checked private and held open (:mod:`._private_file`), then connected in WAL
mode with ``synchronous=NORMAL``. A disk so full that sqlite cannot make the ``-shm`` beside
a spool closed cleanly would keep the spool from opening at all: it is then opened alone
(exclusive locking, the WAL's index in memory) until :func:`share_again` finds room. A spool
file deleted while open is replaced by a new one (:func:`open_anew`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence

from otel_feedback._export._private_file import open_private
from otel_feedback._export._spool_claims import HeldFile
from otel_feedback._export._spool_errors import SpoolError
from otel_feedback._log import logger

__all__ = [
    "INSERT",
    "Row",
    "describe",
    "identity",
    "open_anew",
    "open_spool",
    "share_again",
    "transaction",
]

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
# A row as written: id, route, owner, spooled_at, body.
Row = tuple[str, str, str, float, str]
INSERT = (
    "INSERT OR REPLACE INTO otel_feedback_spool "
    "(id, route, owner, spooled_at, body) VALUES (?, ?, ?, ?, ?)"
)
_BUSY_TIMEOUT_S = 5.0
_OPEN_RETRY_S = 2.0


def open_spool(path: str, *, make_directory: bool) -> tuple[HeldFile, sqlite3.Connection, bool]:
    """The file, checked private and held open; a connection to it; whether it is alone.

    The file stays open as long as the spool (the claims are locks on it), and closes with
    the spool, or when the spool is collected.

    Raises:
        SpoolError: the file or its directory is refused, or was replaced while opened.
        sqlite3.Error, OSError: the file cannot be opened or used.
    """
    descriptor = open_private(path, make_directory=make_directory)
    try:
        connection, alone = _connect_patiently(path)
        if identity(path) != _identity_of(descriptor):
            connection.close()
            raise SpoolError(f"{path}: refused: the file was replaced while opened")
    except BaseException:
        # Only once sqlite has let go of the file: closing any descriptor of a file
        # drops every POSIX lock this process holds on it, sqlite's included.
        os.close(descriptor)
        raise
    return HeldFile(descriptor), connection, alone


def open_anew(path: str, rows: Sequence[Row]) -> tuple[HeldFile, sqlite3.Connection, bool, int]:
    """A new file for a spool whose file was deleted or replaced, holding ``rows``.

    Returns what :func:`open_spool` does, and how many rows the new file holds (those of
    other processes that moved theirs first included).

    Raises:
        SpoolError: no new file can be made there, or the new one is refused.
    """
    try:
        with _directory_lock(path):
            if identity(path) is None:
                # The file is gone; a -wal or -shm left beside it belongs to the deleted
                # database (processes that still use it hold their own open handles): a new
                # database must not adopt them.
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path + suffix)
            handle, fresh, alone = open_spool(path, make_directory=False)
        try:
            with transaction(fresh):
                fresh.executemany(INSERT, rows)
            (count,) = fresh.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone()
        except BaseException:
            fresh.close()
            handle.close()  # after its connection (see open_spool)
            raise
    except (sqlite3.Error, OSError) as error:
        raise SpoolError(describe(path, error)) from error
    return handle, fresh, alone, int(count)


def _connect_patiently(path: str) -> tuple[sqlite3.Connection, bool]:
    """A connection, and whether it had to be opened alone for want of disk space."""
    # Two processes opening a new file at once race to switch it to WAL, and sqlite
    # answers "locked" at once rather than waiting: try again, briefly.
    deadline = time.monotonic() + _OPEN_RETRY_S
    while True:
        try:
            return _connect(path), False
        except sqlite3.OperationalError as error:
            if _no_room(error):
                return _connect_alone(path, error), True
            locked = "locked" in str(error) or "busy" in str(error)
            if not locked or time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # another process holds the file for a moment


def _connect_alone(path: str, error: sqlite3.OperationalError) -> sqlite3.Connection:
    """A connection that needs no -shm file, for a disk with no room to make one.

    Its rows (and those of ended processes) are still delivered; meanwhile other
    processes cannot open the spool. :func:`share_again` shares it again once it can.
    """
    try:
        connection = _connect(path, alone=True)
    except sqlite3.Error:
        raise error from None  # the first reason is the one to tell
    logger.warning(
        "The spool %s cannot be opened for sharing (%s; is the disk full?): this process "
        "uses it alone, and other processes cannot open it, until there is room again",
        path,
        error,
    )
    return connection


def share_again(path: str, alone: sqlite3.Connection) -> tuple[sqlite3.Connection, bool]:
    """The spool opened alone, opened for sharing where there is room; whether still alone.

    Raises:
        sqlite3.Error: it cannot even be opened alone again (``alone`` is closed by then);
            the next call tries again.
    """
    # Two connections of one process would lock each other out: the one opened alone
    # goes first (sqlite writes its index back into the file if it can).
    alone.close()
    try:
        connection = _connect(path)
    except sqlite3.Error:
        return _connect(path, alone=True), True  # still no room: alone again
    logger.info("The spool %s is shared with other processes again", path)
    return connection, False


def _connect(path: str, *, alone: bool = False) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT_S
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
                f"{path} has a table {_TABLE} with the columns "
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


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
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


def identity(path: str) -> tuple[int, int] | None:
    """Which file ``path`` names now (device and inode); None when there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def describe(path: str, error: BaseException) -> str:
    """What to tell of ``error`` about the spool at ``path``: a missing directory by name."""
    if isinstance(error, SpoolError):
        return str(error)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"{path}: the directory {directory} does not exist"
    return f"{path}: {error}"
