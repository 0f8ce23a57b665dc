"""When a route tries again, with how many records, and when it gives up.

One rule for every exporter: a whole batch the endpoint could not take (it is down, slow, or
asked to come back later) is tried again after a growing delay (0.5 s, doubling to 10 s) or
after the delay the endpoint asked for (``Retry-After``), and the next batches are halved
until one gets through, in case the batch itself is the trouble. Records the endpoint answered
for but is not ready to take (a span it has not ingested yet) wait the same way. Records are
held in memory for ``retry_for_s`` at most; at shutdown an endpoint that is down gets no
further try, nor one that has taken nothing it was given for ``GIVE_UP_UNREADY_S``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from otel_feedback._export.delivery.outcome import Outcome
from otel_feedback._log import logger

__all__ = ["GIVE_UP_UNREADY_S", "Policy", "State"]

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
# At shutdown, an endpoint that answers but has taken none of the records it was given for
# this long gets no further try (the SDK's OTLP exporters give up after 10 s too).
GIVE_UP_UNREADY_S = 10.0


class State(enum.Enum):
    """What a route's endpoint is doing, as its last answers tell."""

    UP = "up"
    """Takes batches (or has not been tried yet)."""
    DOWN = "down"
    """Unavailable: no answer, or asked to come back later; tried again with backoff."""
    NOT_READY = "not ready"
    """Answers, but takes none of the records it is given yet."""


@dataclass
class Policy:
    """The retry state of one route; only its route's thread changes it."""

    name: str
    max_batch: int
    retry_for_s: float
    batch_limit: int = 0
    backoff_s: float = FIRST_BACKOFF_S
    next_try: float = 0.0
    failing_since: float | None = None
    unready_since: float | None = None

    def __post_init__(self) -> None:
        self.batch_limit = self.max_batch

    @property
    def state(self) -> State:
        """The endpoint's state now."""
        if self.failing_since is not None:
            return State.DOWN
        if self.unready_since is not None:
            return State.NOT_READY
        return State.UP

    def learn(self, outcome: Outcome, size: int, now: float) -> None:
        """Update the state from the outcome of exporting ``size`` records at ``now``."""
        if outcome.delivered:
            self.unready_since = None
            self.backoff_s = FIRST_BACKOFF_S
            self.batch_limit = self.max_batch
        elif outcome.retry and not outcome.down and self.unready_since is None:
            self.unready_since = now
        if outcome.delivered or (outcome.retry and not outcome.down):
            self.failing_since = None  # it answered: it is up, whatever it said of these
        if not outcome.retry:
            return
        if outcome.down:
            if self.failing_since is None:
                self.failing_since = now
                logger.info("%s cannot take feedback now; retrying with backoff", self.name)
            if size > 1 and outcome.retry_after_s is None:
                # Maybe the batch itself is the trouble (too large for the endpoint): try
                # smaller ones until something gets through. (One that said when to come
                # back is busy, not choking on the batch.)
                self.batch_limit = max(1, size // 2)
        if outcome.retry_after_s is not None:
            # The endpoint said when; held records expire by retry_for anyway.
            self.next_try = now + min(outcome.retry_after_s, self.retry_for_s)
        else:
            self.next_try = now + self.backoff_s
            self.backoff_s = min(self.backoff_s * 2, MAX_BACKOFF_S)

    def held_too_long(self, since: float, now: float) -> str | None:
        """The reason to drop records held since ``since``, or None while they may wait."""
        start = self.failing_since if self.failing_since is not None else since
        if now - start <= self.retry_for_s:
            return None
        why = "unreachable" if self.failing_since is not None else "not accepted"
        return f"{why} for {self.retry_for_s:g}s"

    def worth_a_try_at_shutdown(self, now: float, deadline: float) -> bool:
        """Whether, shutting down, this endpoint gets another try before ``deadline``."""
        if self.failing_since is not None or now >= deadline:
            return False
        if self.unready_since is None:
            return True
        return max(now, self.next_try) - self.unready_since < GIVE_UP_UNREADY_S
