"""Taking over the rows that processes which ended left in the spool.

A process owns the rows of an ended one by rewriting their owner. Where that fails (a full
disk, a file locked too long) it adopts them in memory instead: it reads, sends and deletes
them as its own while they still name the ended process, holds a claim on them
(:mod:`._spool_claims`) so that no other live process adopts them too, and tries the rewrite
again at each later pass. Everything here runs with the spool's lock held.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

from otel_feedback._export._spool_claims import claim, release, running
from otel_feedback._export._spool_sqlite import transaction

__all__ = ["own_adopted", "owners_json", "take_over_ended"]

_COUNT_ROWS = "SELECT route, COUNT(*) FROM otel_feedback_spool WHERE owner = ? GROUP BY route"
_REWRITE_OWNER = "UPDATE otel_feedback_spool SET owner = ? WHERE owner = ?"


def owners_json(owner: str, adopted: set[str]) -> str:
    """Whose rows a process reads as its own (its owner and the owners it adopted).

    As a JSON list for ``json_each``: one query, whatever the number of owners.
    """
    return json.dumps([owner, *sorted(adopted)])


def own_adopted(
    connection: sqlite3.Connection, descriptor: int, owner: str, adopted: set[str]
) -> None:
    """Rewrite the owner of rows adopted in memory, where there is room.

    Each owner whose rows are now ``owner``'s leaves ``adopted``, and its claim is released.
    """
    for ended in sorted(adopted):
        try:
            with transaction(connection):
                connection.execute(_REWRITE_OWNER, (owner, ended))
        except sqlite3.OperationalError:
            return  # still no room: they stay adopted, and are read all the same
        adopted.discard(ended)
        release(descriptor, ended)


def take_over_ended(
    connection: sqlite3.Connection, descriptor: int, owner: str, adopted: set[str]
) -> tuple[Counter[str], list[str]]:
    """Take the rows of ended processes for ``owner``: on disk, or adopted in memory.

    Owners whose rows could only be adopted join ``adopted`` and keep their claim on
    ``descriptor``; rows another live process adopted are left to it.

    Returns:
        The rows taken, per route; and why rows could not be owned on disk, if any.
    """
    dead = [
        ended
        for (ended,) in connection.execute(
            "SELECT DISTINCT owner FROM otel_feedback_spool "
            "WHERE owner NOT IN (SELECT value FROM json_each(?))",
            (owners_json(owner, adopted),),
        ).fetchall()
        if not running(ended)
    ]
    taken: Counter[str] = Counter()
    failures: list[str] = []
    for ended in dead:
        if not claim(descriptor, ended):
            continue  # another live process has adopted them and sends them
        try:
            counts, failure = _take_over_one(connection, ended, owner)
        except BaseException:
            release(descriptor, ended)
            raise
        if failure is None or not counts:
            release(descriptor, ended)
        else:
            adopted.add(ended)
            failures.append(failure)
        taken += counts
    return taken, failures


def _take_over_one(
    connection: sqlite3.Connection, ended: str, owner: str
) -> tuple[Counter[str], str | None]:
    """``ended``'s rows per route, now ``owner``'s; and why they stayed ``ended``'s, if so."""
    try:
        with transaction(connection):
            counts = _count_rows(connection, ended)
            connection.execute(_REWRITE_OWNER, (owner, ended))
    except sqlite3.OperationalError as error:  # full, locked, read-only: still readable
        return _count_rows(connection, ended), str(error)
    return counts, None


def _count_rows(connection: sqlite3.Connection, owner: str) -> Counter[str]:
    return Counter(
        {route: int(count) for route, count in connection.execute(_COUNT_ROWS, (owner,))}
    )
