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

Bounds: at most ``max_records`` rows and ``max_age_s`` of age; rows past either bound are
deleted and reported to the caller, which counts them as dropped.

Several processes may share one file. Each process reads back only the rows it owns; at
start it takes over every row left in the file, so a record left by a process that died is
sent by the next one (and may be sent twice when a live process's rows are taken over:
delivery is at least once, and receivers de-duplicate on the feedback id).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence

from otel_feedback._model import Feedback

__all__ = ["Spool", "SpoolError"]

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


class SpoolError(Exception):
    """The spool file cannot be used; the message says why."""


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
        self._owner = uuid.uuid4().hex
        try:
            self._connection = self._connect()
            self._rows = self._count_rows()
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(_describe(path, error)) from error

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
        self._owner = uuid.uuid4().hex
        self._connection = self._connect()

    def take_over(self) -> Counter[str]:
        """Own every row in the file (left by earlier processes); return rows per route."""
        with self._lock:
            self._connection.execute("UPDATE otel_feedback_spool SET owner = ?", (self._owner,))
            rows = self._connection.execute(
                "SELECT route, COUNT(*) FROM otel_feedback_spool GROUP BY route"
            ).fetchall()
        return Counter({route: int(count) for route, count in rows})

    def put(self, records: Sequence[Feedback], routes: Sequence[str]) -> Counter[str]:
        """Keep ``records`` for each of ``routes``, in one transaction.

        Returns:
            The rows evicted to stay within ``max_records``, counted per route (oldest
            first; possibly rows just written).
        """
        now = time.time()
        rows = [
            (str(record.id), route, self._owner, now, body)
            for record in records
            for body in (record.model_dump_json(),)
            for route in routes
        ]
        with self._lock, self._connection:
            cursor = self._connection.executemany(
                "INSERT OR REPLACE INTO otel_feedback_spool (id, route, owner, spooled_at, body) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self._rows += max(cursor.rowcount, 0)
            excess = self._rows - self.max_records
            if excess <= 0:
                return Counter()
            return self._evict(
                "rowid IN (SELECT rowid FROM otel_feedback_spool ORDER BY rowid LIMIT ?)", excess
            )

    def expire(self) -> Counter[str]:
        """Delete rows older than ``max_age_s``; return them counted per route."""
        with self._lock, self._connection:
            self._rows = int(
                self._connection.execute("SELECT COUNT(*) FROM otel_feedback_spool").fetchone()[0]
            )
            return self._evict("spooled_at < ?", time.time() - self.max_age_s)

    def _evict(self, where: str, argument: float) -> Counter[str]:
        # Called with the lock held, inside a transaction.
        evicted = Counter(
            {
                route: int(count)
                for route, count in self._connection.execute(
                    f"SELECT route, COUNT(*) FROM otel_feedback_spool WHERE {where} GROUP BY route",  # noqa: S608 - constant fragments
                    (argument,),
                )
            }
        )
        delete = f"DELETE FROM otel_feedback_spool WHERE {where}"  # noqa: S608 - constant fragments
        cursor = self._connection.execute(delete, (argument,))
        self._rows -= max(cursor.rowcount, 0)
        return evicted

    def remove(self, ids: Iterable[str], route: str) -> None:
        """``route`` is done with the records of these ids: delivered, or refused for good."""
        with self._lock, self._connection:
            cursor = self._connection.executemany(
                "DELETE FROM otel_feedback_spool WHERE id = ? AND route = ?",
                [(i, route) for i in ids],
            )
            self._rows -= max(cursor.rowcount, 0)

    def oldest(self, route: str, limit: int) -> tuple[list[Feedback], list[str]]:
        """Up to ``limit`` of this process's rows for ``route``, oldest first.

        Returns:
            The records, and the ids of rows that could not be read back (the caller
            removes and counts them).
        """
        with self._lock:
            rows = self._connection.execute(
                "SELECT id, body FROM otel_feedback_spool WHERE route = ? AND owner = ? "
                "ORDER BY rowid LIMIT ?",
                (route, self._owner, limit),
            ).fetchall()
        records, unreadable = [], []
        for record_id, body in rows:
            try:
                records.append(Feedback.model_validate_json(body))
            except ValueError:
                unreadable.append(record_id)
        return records, unreadable

    def count(self, route: str | None = None) -> int:
        """Rows in the file (all owners), for one route or all."""
        with self._lock:
            if route is None:
                row = self._connection.execute(
                    "SELECT COUNT(*) FROM otel_feedback_spool"
                ).fetchone()
            else:
                row = self._connection.execute(
                    "SELECT COUNT(*) FROM otel_feedback_spool WHERE route = ?", (route,)
                ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._connection.close()


def _describe(path: str, error: BaseException) -> str:
    if isinstance(error, SpoolError):
        return str(error)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"{path}: the directory {directory} does not exist"
    return f"{path}: {error}"
