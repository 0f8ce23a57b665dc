"""An optional on-disk spool (sqlite): records outlive a crash or a long outage.

The processor's background thread writes each record here when it takes it from the queue,
and deletes it once every exporter has delivered it or refused it for good. Records still
here when a processor starts (after a crash, or dropped from memory during a long outage)
are sent again: delivery is at least once, and receivers de-duplicate on the feedback id.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence

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
    """The spooled records of one file; safe to use from several threads.

    :meth:`keep` and :meth:`settle` are the processor's side: they count, per record, the
    exporters still owing it, and never raise (a failing disk is logged once; the rows it
    could not delete are sent again after a restart).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._connection = self._connect()
        self._owing: dict[str, int] = {}

    def keep(self, records: Sequence[Feedback], exporters: int) -> None:
        """Spool ``records`` until ``exporters`` exporters have each settled them."""
        if not self._safely("write", lambda: self.put(records)):
            return
        for record in records:
            self._owing[str(record.id)] = exporters

    def settle(self, records: Sequence[Feedback]) -> None:
        """One exporter is done with ``records``; forget those no exporter owes any more."""
        done = []
        for record in records:
            key = str(record.id)
            left = self._owing.get(key)
            if left is None:
                continue
            if left > 1:
                self._owing[key] = left - 1
            else:
                del self._owing[key]
                done.append(key)
        # Rows that cannot be removed are only sent again after a restart.
        self._safely("update", lambda: self.remove(done))

    def _safely(self, verb: str, action: Callable[[], None]) -> bool:
        try:
            action()
        except Exception:  # noqa: BLE001 - a failing disk must not stop the export
            warn_once(
                f"spool-{verb}:{self._path}",
                "Could not %s the feedback spool %s",
                verb,
                self._path,
                exc_info=True,
            )
            return False
        return True

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
        """A fresh connection and ledger, in a forked child.

        A connection must not cross a fork, and the parent settles its own records.
        """
        self._lock = threading.Lock()
        self._connection = self._connect()
        self._owing = {}

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
