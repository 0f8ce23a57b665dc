"""The HTML report of ``summary --html``: one self-contained page, a chart per key over time.

Charts are inline SVG written here, and the styles are inline: the page makes no network
request and runs no script, so it opens the same offline, from a mail, or in a CI artifact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timezone
from html import escape
from typing import Final

from otel_feedback._cli._stats import Group, summarize
from otel_feedback._model import Feedback

__all__ = ["html_report"]

_WIDTH: Final = 720
_HEIGHT: Final = 200
_LEFT: Final = 48
_RIGHT: Final = 48
_TOP: Final = 16
_BOTTOM: Final = 36
_MAX_X_LABELS: Final = 8

_STYLE: Final = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933;
       margin: 2rem auto; max-width: 780px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .3rem; }
.meta { color: #616e7c; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: right; padding: .3rem .6rem; border-bottom: 1px solid #e4e7eb; }
th:first-child, td:first-child { text-align: left; }
th { color: #52606d; font-weight: 600; }
.legend { color: #616e7c; font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
.values { margin: .2rem 0 0; padding: 0; list-style: none; font-size: 12px; }
.values li { display: flex; align-items: center; gap: .5rem; }
.values .bar { background: #9fb3c8; height: 8px; }
svg text { font: 11px system-ui, sans-serif; fill: #52606d; }
"""


def html_report(records: Sequence[Feedback], *, title: str, sources: Sequence[str]) -> str:
    """The whole page for ``records``."""
    by_key = summarize(records, "key")
    per_day = _per_day(records)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{len(records)} record(s) from {escape(", ".join(sources))}; '
        f"generated {generated}</p>",
        _table(by_key),
    ]
    for group in by_key:
        parts.append(f"<h2>{escape(group.key)}</h2>")
        parts.append(_chart(group.key, per_day[group.key]))
        parts.append(_values(group))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _per_day(records: Sequence[Feedback]) -> dict[str, dict[date, Group]]:
    days: dict[str, dict[date, Group]] = defaultdict(dict)
    for group in summarize(records, "day"):
        days[group.key][date.fromisoformat(group.split or "1970-01-01")] = group
    return days


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _table(groups: Sequence[Group]) -> str:
    rows = "".join(
        f"<tr><td>{escape(g.key)}</td><td>{g.count}</td><td>{len(g.scores)}</td>"
        f"<td>{_number(g.mean)}</td><td>{_number(g.min)}</td><td>{_number(g.max)}</td></tr>"
        for g in groups
    )
    return (
        "<table><thead><tr><th>key</th><th>records</th><th>scores</th><th>mean</th>"
        f"<th>min</th><th>max</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _values(group: Group) -> str:
    if not group.values:
        return ""
    top = group.values.most_common(8)
    most = top[0][1]
    items = "".join(
        f'<li><span class="bar" style="width:{max(2, round(160 * n / most))}px"></span>'
        f"{escape(label)} ({n})</li>"
        for label, n in top
    )
    return f'<ul class="values">{items}</ul>'


def _chart(key: str, days: dict[date, Group]) -> str:
    """Records per day as bars (right axis), the day's mean score as a line (left axis)."""
    first, last = min(days), max(days)
    span = (last - first).days + 1
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    slot = plot_w / span
    bottom = _TOP + plot_h
    most = max(g.count for g in days.values())
    means = {d: g.mean for d, g in days.items() if g.mean is not None}
    # The score axis starts at 0 (or below, for negative scores) and is never flat.
    low = min(0.0, min((g.min for g in days.values() if g.min is not None), default=0.0))
    high = max((g.max for g in days.values() if g.max is not None), default=1.0)
    if high <= low:
        high = low + 1.0

    def x(day: date) -> float:
        return _LEFT + slot * ((day - first).days + 0.5)

    def y_score(score: float) -> float:
        return bottom - plot_h * (score - low) / (high - low)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="{escape(key)}: records and mean score per day">'
    ]
    for i in range(5):  # grid lines; the score axis only for a key that has scores
        score = low + (high - low) * i / 4
        y = y_score(score)
        out.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e4e7eb"/>'
        )
        if means:
            out.append(
                f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{score:.3g}</text>'
            )
        count = most * i / 4
        out.append(
            f'<text x="{_WIDTH - _RIGHT + 6}" y="{y + 4:.1f}">{count:.3g}</text>'
            if i in (0, 2, 4)
            else ""
        )
    bar_w = max(1.0, slot * 0.6)
    for day, group in sorted(days.items()):
        h = plot_h * group.count / most
        out.append(
            f'<rect x="{x(day) - bar_w / 2:.1f}" y="{bottom - h:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}" fill="#d9e2ec"><title>{day}: {group.count} record(s)</title></rect>'
        )
    if means:
        points = " ".join(f"{x(d):.1f},{y_score(m):.1f}" for d, m in sorted(means.items()))
        out.append(f'<polyline points="{points}" fill="none" stroke="#2f6fde" stroke-width="2"/>')
        for day, mean in sorted(means.items()):
            out.append(
                f'<circle cx="{x(day):.1f}" cy="{y_score(mean):.1f}" r="3.5" fill="#2f6fde">'
                f"<title>{day}: mean {mean:.3g}</title></circle>"
            )
    step = max(1, -(-span // _MAX_X_LABELS))
    for offset in range(0, span, step):
        day = date.fromordinal(first.toordinal() + offset)
        out.append(
            f'<text x="{x(day):.1f}" y="{bottom + 18}" text-anchor="middle">'
            f"{day.strftime('%b %d')}</text>"
        )
    out.append(
        f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{bottom}" y2="{bottom}" stroke="#9aa5b1"/>'
    )
    out.append("</svg>")
    legend = '<div class="legend">'
    if means:
        legend += '<span class="swatch" style="background:#2f6fde"></span>mean score (left axis)'
    legend += (
        '<span class="swatch" style="background:#d9e2ec"></span>records per day (right axis)</div>'
    )
    return "".join(out) + legend
