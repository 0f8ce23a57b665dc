"""An optional on-disk spool (sqlite): records outlive a crash or a long outage.

The processor's background thread writes each record here when it takes it from the queue,
and deletes it once every exporter has delivered it or refused it for good. Records still
here when a processor starts (after a crash, or dropped from memory during a long outage)
are sent again: delivery is at least once, and receivers de-duplicate on the feedback id.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence

from otel_feedback._log import warn_once
from otel_feedback._model import Feedback

__all__ = ["Spool"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
)
"""


class Spool:
    """The spooled records of one file; safe to use from several threads."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._connection = self._connect()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(_SCHEMA)
        return connection

    @property
    def path(self) -> str:
        """The sqlite file."""
        return self._path

    def reopen(self) -> None:
        """A fresh connection (in a forked child: a connection must not cross a fork)."""
        self._lock = threading.Lock()
        self._connection = self._connect()

    def put(self, records: Sequence[Feedback]) -> None:
        """Keep ``records`` (a record already kept is left as it is)."""
        with self._lock:
            self._connection.executemany(
                "INSERT OR IGNORE INTO feedback (id, record) VALUES (?, ?)",
                [(str(r.id), r.model_dump_json()) for r in records],
            )

    def remove(self, ids: Iterable[str]) -> None:
        """Forget the records with these ids: they are delivered."""
        with self._lock:
            self._connection.executemany("DELETE FROM feedback WHERE id = ?", [(i,) for i in ids])

    def load(self) -> list[Feedback]:
        """Every record kept, oldest first; unreadable rows are deleted and skipped."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT id, record FROM feedback ORDER BY rowid"
            ).fetchall()
        records, unreadable = [], []
        for record_id, text in rows:
            try:
                records.append(Feedback.model_validate_json(text))
            except ValueError:
                unreadable.append(record_id)
        if unreadable:
            warn_once(
                f"spool-unreadable:{self._path}",
                "Removed %d unreadable record(s) from the feedback spool %s",
                len(unreadable),
                self._path,
            )
            self.remove(unreadable)
        return records

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._connection.execute("SELECT COUNT(*) FROM feedback").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._connection.close()
