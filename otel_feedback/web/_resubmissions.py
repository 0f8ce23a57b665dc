"""How many records each token has made, so that one token cannot make more than a few.

One token gives one feedback id; every accepted submission with it is exported under that
id (receivers that upsert keep one record, with the latest values). No submission is skipped
as "identical": with several worker processes each would judge against its own memory, and
a user who goes back to an earlier rating on another worker would see it answered but never
exported. A double click costs one harmless re-export instead.

The table is per process and bounded: at most ``max_updates`` records per token (then 429),
and past ``max_tokens`` live tokens the least recently used is forgotten (only tokens that
verified get here, so filling it takes as many tokens signed by the server). With N worker
processes a token can make up to N x ``max_updates`` records.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Decision", "Resubmissions"]


@dataclass(frozen=True)
class Decision:
    """The outcome of :meth:`Resubmissions.check` for one submission."""

    slot: bytes
    """The token's entry (a digest of token and key)."""
    refused: bool = False
    """The token has made ``max_updates`` records in this process already."""
    previous: tuple[int, float] | None = None
    """The entry before this submission, to restore if it is not recorded after all."""


class Resubmissions:
    """The per-token table; thread-safe."""

    def __init__(self, *, max_updates: int, max_tokens: int) -> None:
        self._max_updates = max_updates
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        # slot -> (records made, token expiry as Unix seconds)
        self._entries: OrderedDict[bytes, tuple[int, float]] = OrderedDict()

    def check(self, token: str, key: str, expires: float) -> Decision:
        """Note a submission; say whether to record it. Counted as recorded until forgotten."""
        slot = hashlib.sha256(f"{token}\n{key}".encode()).digest()
        with self._lock:
            entry = self._entries.get(slot)
            if entry is not None:
                self._entries.move_to_end(slot)
                if entry[0] >= self._max_updates:
                    return Decision(slot, refused=True)
            self._entries[slot] = ((entry[0] if entry else 0) + 1, expires)
            self._trim()
            return Decision(slot, previous=entry)

    def forget(self, decision: Decision) -> None:
        """Undo :meth:`check` for a submission that was not recorded (bad values)."""
        with self._lock:
            if decision.previous is None:
                self._entries.pop(decision.slot, None)
            else:
                self._entries[decision.slot] = decision.previous

    def __len__(self) -> int:
        return len(self._entries)

    def _trim(self) -> None:
        # Least recently used first; expired tokens can no longer verify, so theirs go too.
        # Only the front is looked at: a full scan per request would cost O(n) each.
        now = time.time()
        while self._entries:
            _, (_, expires) = next(iter(self._entries.items()))
            if expires > now and len(self._entries) <= self._max_tokens:
                return
            self._entries.popitem(last=False)
