"""What each token last recorded, so that resubmissions cost nothing or are refused.

One token gives one feedback id; a resubmission updates that feedback. An identical
resubmission (a double click, a retry) is answered with the id and not recorded again; a
changed one is recorded as an update, at most ``max_updates`` times per token. The table is
per process and bounded: past ``max_tokens`` live tokens the least recently used is forgotten
(only tokens that verified get here, so filling it takes as many tokens signed by the server).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["Decision", "Resubmissions"]


@dataclass(frozen=True)
class Decision:
    """The outcome of :meth:`Resubmissions.check` for one submission."""

    slot: bytes
    """The token's entry (a digest of token and key)."""
    unchanged: bool = False
    """The same values as last recorded with this token: nothing to record."""
    refused: bool = False
    """The token has been used for ``max_updates`` records already."""
    previous: tuple[bytes, int, float] | None = None
    """The entry before this submission, to restore if it is not recorded after all."""


class Resubmissions:
    """The per-token table; thread-safe."""

    def __init__(self, *, max_updates: int, max_tokens: int) -> None:
        self._max_updates = max_updates
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        # slot -> (digest of the last values, records made, token expiry as Unix seconds)
        self._entries: OrderedDict[bytes, tuple[bytes, int, float]] = OrderedDict()

    def check(
        self, token: str, key: str | None, values: dict[str, Any], expires: float
    ) -> Decision:
        """Note a submission; say whether to record it. Counted as recorded until forgotten."""
        slot = hashlib.sha256(f"{token}\n{key}".encode()).digest()
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).digest()
        with self._lock:
            entry = self._entries.get(slot)
            if entry is not None:
                self._entries.move_to_end(slot)
                if entry[0] == digest:
                    return Decision(slot, unchanged=True)
                if entry[1] >= self._max_updates:
                    return Decision(slot, refused=True)
            self._entries[slot] = (digest, (entry[1] if entry else 0) + 1, expires)
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
            _, (_, _, expires) = next(iter(self._entries.items()))
            if expires > now and len(self._entries) <= self._max_tokens:
                return
            self._entries.popitem(last=False)
