"""The root spans of recent traces: feedback on a whole trace links one of its real spans.

OpenInference wants a carrier of trace-level feedback linked to a span of the trace, its
root preferred. A record about a trace names only the trace, so the processors note the
root of each trace whose spans end in this process (or, for a trace continued from
elsewhere, its first span here) and the carrier links that span.

Noting runs for every span that ends, on the application's thread: plain dicts, no lock on
that path, and the older half dropped at once when one holds twice the bound.
"""

from __future__ import annotations

import threading
from itertools import islice
from typing import Any, Final

__all__ = ["CARRIER_SCOPE", "forget", "note_root", "root_of"]

CARRIER_SCOPE: Final = "otel_feedback"
"""The instrumentation scope of carrier spans (the tracer that makes them)."""

_MAX_TRACES = 4096
"""The roots of at least this many of the latest traces are kept (at most twice as many)."""
# trace id -> span id of its root (no parent), and of its first span here (remote parent).
_roots: dict[int, int] = {}
_firsts: dict[int, int] = {}
_trimming = threading.Lock()


def note_root(span: Any) -> None:
    """Remember ``span``, which ended, when it is the root of its trace in this process.

    Called by the processors for every span: a span with a local parent costs one check.
    """
    parent = span.parent
    if parent is None:
        context = span.context
        _roots[context.trace_id] = context.span_id
        if len(_roots) > 2 * _MAX_TRACES:
            _trim(_roots)
    elif parent.is_remote:
        context = span.context
        if context.trace_id not in _firsts:
            _firsts[context.trace_id] = context.span_id
            if len(_firsts) > 2 * _MAX_TRACES:
                _trim(_firsts)


def forget(trace_id: int, span_id: int) -> None:
    """Unsay ``span_id`` as a root of ``trace_id``: a carrier span of feedback just ended.

    Carriers are not the trace's own spans; forgetting them here, rather than checking
    every span's scope as it ends, keeps noting cheap.
    """
    for known in (_roots, _firsts):
        if known.get(trace_id) == span_id:
            known.pop(trace_id, None)


def root_of(trace_id: int) -> int:
    """The span id of the trace's root as far as this process saw it; 0 when unknown."""
    return _roots.get(trace_id) or _firsts.get(trace_id) or 0


def _trim(known: dict[int, int]) -> None:
    with _trimming:
        if len(known) <= 2 * _MAX_TRACES:
            return
        try:
            newest = list(islice(known.items(), len(known) - _MAX_TRACES, None))
        except RuntimeError:
            return  # another thread added one meanwhile: trimmed at the next root
        # Rebuilt rather than deleted from the front, whose holes would slow every later
        # look at the oldest key. A root noted meanwhile may be forgotten: its trace's
        # feedback then gets a carrier with no link, as for a trace not seen here.
        known.clear()
        known.update(newest)
