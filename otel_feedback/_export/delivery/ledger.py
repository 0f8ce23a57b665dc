"""The ledger: every count of one processor, every reason, metric and loss log, in one place.

Each record handed to the processor is in exactly one place per exporter at any instant:

- ``queued``: taken by ``put`` and not yet read by the intake (shared by every exporter);
- ``memory``: in an exporter's inbox, backlog or export call, and not on disk;
- ``spooled``: a row of this process's in the spool that the exporter still owes;
- ``exported`` or ``dropped`` (with a reason): done.

Records only ever *move* between places, and every move is one call under the ledger's lock,
so the balance ``received + resumed = exported + dropped + pending + spooled`` holds for every
exporter at every observation (``pending`` = queued + memory), whatever the exporters do. The
ledger's lock is a leaf: nothing is called while it is held but the metrics and the loss log.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from otel_feedback._log import LossLog
from otel_feedback._version import __version__

__all__ = ["FeedbackExportStats", "Ledger", "Place"]

# Distinct drop reasons kept per exporter; later ones are counted together.
_MAX_REASONS = 50


class Place(enum.Enum):
    """Where a record an exporter still owes waits."""

    MEMORY = "memory"
    SPOOL = "spool"


@dataclass(frozen=True)
class FeedbackExportStats:
    """What became of the records a processor received, at one instant.

    For each exporter ``name``, at every instant (flushed or not)::

        received + resumed[name] == exported[name] + sum(dropped[name].values())
                                    + pending[name] + spooled[name]

    :meth:`unaccounted` returns the difference, which is always 0.
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
    """Records in memory, not on disk, per exporter: queued, waiting, or being sent."""
    spooled: dict[str, int]
    """This process's rows in the spool that each exporter still owes."""

    def unaccounted(self) -> dict[str, int]:
        """Per exporter, records in none of the places above (0 for every exporter)."""
        return {
            name: self.received
            + self.resumed[name]
            - self.exported[name]
            - sum(self.dropped[name].values())
            - self.pending[name]
            - self.spooled[name]
            for name in self.exported
        }


class _Account:
    """The counts of one exporter."""

    __slots__ = ("dropped", "exported", "memory", "resumed", "spooled")

    def __init__(self) -> None:
        self.resumed = 0
        self.memory = 0
        self.spooled = 0
        self.exported = 0
        self.dropped: Counter[str] = Counter()

    def take(self, place: Place, count: int) -> None:
        if place is Place.MEMORY:
            self.memory -= count
        else:
            self.spooled -= count

    def put(self, place: Place, count: int) -> None:
        if place is Place.MEMORY:
            self.memory += count
        else:
            self.spooled += count


class Ledger:
    """The counts of one processor; every method is one atomic move (see the module)."""

    def __init__(self, routes: Iterable[str], *, meter_provider: MeterProvider | None) -> None:
        self._lock = threading.Lock()
        self._accounts = {name: _Account() for name in routes}
        self._received = 0
        self._queued = 0
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

    def reset(self) -> None:
        """All counts back to zero (a forked child starts afresh)."""
        with self._lock:
            for name in self._accounts:
                self._accounts[name] = _Account()
            self._received = self._queued = 0

    # -- the intake --------------------------------------------------------------------

    def receive(self, count: int) -> None:
        """``count`` records queued by ``put``."""
        with self._lock:
            self._received += count
            self._queued += count

    def refuse(self, count: int, reason: str) -> None:
        """``count`` records handed to the processor and lost before the queue."""
        with self._lock:
            self._received += count
            for name in self._accounts:
                self._drop(name, count, reason)

    def unqueue(self, count: int, reason: str) -> None:
        """``count`` queued records lost before any exporter had them."""
        with self._lock:
            self._queued -= count
            for name in self._accounts:
                self._drop(name, count, reason)

    def take_in(self, *, spooled: int, in_memory: int) -> None:
        """Queued records read by the intake: written to the spool, or kept in memory."""
        with self._lock:
            self._queued -= spooled + in_memory
            for account in self._accounts.values():
                account.spooled += spooled
                account.memory += in_memory

    # -- the routes --------------------------------------------------------------------

    def exported(self, route: str, place: Place, count: int) -> None:
        """``route`` delivered ``count`` records that waited in ``place``."""
        if not count:
            return
        with self._lock:
            account = self._accounts[route]
            account.take(place, count)
            account.exported += count
        self._exported_counter.add(count, {"exporter": route})

    def dropped(self, route: str, place: Place, reasons: Mapping[str, int]) -> None:
        """``route`` lost records that waited in ``place``, so many for each reason."""
        with self._lock:
            account = self._accounts[route]
            for reason, count in reasons.items():
                if count:
                    account.take(place, count)
                    self._drop(route, count, reason)

    def moved(self, route: str, source: Place, target: Place, count: int) -> None:
        """``count`` records of ``route`` went from ``source`` to ``target`` (written, read)."""
        if not count or source is target:
            return
        with self._lock:
            account = self._accounts[route]
            account.take(source, count)
            account.put(target, count)

    def resumed(self, route: str, count: int) -> None:
        """``count`` spool rows left by ended processes, now owed by ``route`` here."""
        with self._lock:
            account = self._accounts[route]
            account.resumed += count
            account.spooled += count

    # -- reading -----------------------------------------------------------------------

    def stats(self) -> FeedbackExportStats:
        """A snapshot of every count."""
        with self._lock:
            accounts = self._accounts
            return FeedbackExportStats(
                received=self._received,
                resumed={n: a.resumed for n, a in accounts.items()},
                exported={n: a.exported for n, a in accounts.items()},
                dropped={n: dict(a.dropped) for n, a in accounts.items()},
                pending={n: self._queued + a.memory for n, a in accounts.items()},
                spooled={n: a.spooled for n, a in accounts.items()},
            )

    def total_dropped(self) -> int:
        """Records lost so far, once per exporter that lost them."""
        with self._lock:
            return sum(sum(a.dropped.values()) for a in self._accounts.values())

    def in_memory(self, route: str) -> int:
        """Records of ``route`` in memory and not on disk."""
        with self._lock:
            return self._accounts[route].memory

    def flush_log(self) -> None:
        """Log the losses not logged yet (rate-limited between calls)."""
        self._losses.flush()

    def _drop(self, route: str, count: int, reason: str) -> None:
        # Called with the lock held.
        dropped = self._accounts[route].dropped
        if reason not in dropped and len(dropped) >= _MAX_REASONS:
            reason = f"other reasons (past {_MAX_REASONS} distinct ones)"
        dropped[reason] += count
        self._dropped_counter.add(count, {"exporter": route, "reason": reason})
        self._losses.report(route, reason, count)
