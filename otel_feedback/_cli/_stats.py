"""Statistics of feedback records: per key, optionally split by source type or by day."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from otel_feedback._model import Feedback

__all__ = ["SPLITS", "Group", "split_value", "summarize"]

SPLITS: Final = ("key", "source", "day")
"""``--by``: one row per key, per key and source type, or per key and day (UTC)."""


@dataclass
class Group:
    """The records of one key (and source type or day)."""

    key: str
    split: str | None
    count: int = 0
    scores: list[float] = field(default_factory=list)
    values: Counter[str] = field(default_factory=Counter)

    @property
    def mean(self) -> float | None:
        """Mean of the scores (``true`` is 1), or ``None`` with no score."""
        return sum(self.scores) / len(self.scores) if self.scores else None

    @property
    def min(self) -> float | None:
        """Lowest score, or ``None``."""
        return min(self.scores) if self.scores else None

    @property
    def max(self) -> float | None:
        """Highest score, or ``None``."""
        return max(self.scores) if self.scores else None

    def as_dict(self, by: str) -> dict[str, Any]:
        """The group as JSON: key, the split's field, count, mean, min, max, values."""
        row: dict[str, Any] = {"key": self.key}
        if by != "key":
            row[by] = self.split
        row.update(
            count=self.count,
            mean=self.mean,
            min=self.min,
            max=self.max,
            values=dict(self.values.most_common()),
        )
        return row


def split_value(record: Feedback, by: str) -> str | None:
    """The record's source type (``--by source``) or UTC day (``--by day``)."""
    if by == "source":
        return record.feedback_source.type if record.feedback_source is not None else None
    if by == "day":
        return record.created_at.date().isoformat()
    return None


def value_label(value: object) -> str | None:
    """A value as a label for the distribution: strings as they are, the rest as JSON."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def summarize(records: Iterable[Feedback], by: str) -> list[Group]:
    """Groups sorted by key, then by the split's value."""
    groups: dict[tuple[str, str | None], Group] = {}
    for record in records:
        split = split_value(record, by)
        group = groups.get((record.key, split))
        if group is None:
            group = groups[(record.key, split)] = Group(record.key, split)
        group.count += 1
        if record.score is not None:
            group.scores.append(float(record.score))
        label = value_label(record.value)
        if label is not None:
            group.values[label] += 1
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1] or ""))]
