"""The root spans of recent traces: feedback on a whole trace finds its trace's real root.

OpenInference wants a carrier of trace-level feedback linked to a span of the trace, its
root preferred; LangSmith keeps feedback on a whole trace on its root run, whose id is the
root span's id. A record about a trace names only the trace, so the processors note the
root of each trace whose spans start in this process (or, for a trace continued from
elsewhere, its first span here), open or ended, and the carrier links that span.

A root may also be told: a feedback token minted inside a trace carries its root's id, so
the process that takes the feedback learns the root without having seen the trace.

Noting runs for every span that starts, on the application's thread: plain dicts, no lock
on that path, and the older half dropped at once when one holds twice the bound.
"""

from __future__ import annotations

import threading
from itertools import islice
from typing import Any, Final

__all__ = ["CARRIER_SCOPE", "forget", "learn_root", "note_root", "real_root_of", "root_of"]

CARRIER_SCOPE: Final = "otel_feedback"
"""The instrumentation scope of carrier spans (the tracer that makes them)."""

_MAX_TRACES = 4096
"""The roots of at least this many of the latest traces are kept (at most twice as many)."""
# trace id -> span id of its root (no parent), of a root a token told (signed, made where
# the trace ran), and of its first span here (remote parent).
_roots: dict[int, int] = {}
_told: dict[int, int] = {}
_firsts: dict[int, int] = {}
_trimming = threading.Lock()


def note_root(span: Any) -> None:
    """Remember ``span`` when it is the root of its trace in this process.

    Called by the processors for every span as it starts (so that an open root is known)
    and as it ends: a span with a local parent costs one check.
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


def learn_root(trace_id: int, span_id: int) -> None:
    """Take ``span_id`` as the root of ``trace_id``, as a signed token minted there says."""
    if trace_id and span_id and _told.get(trace_id) != span_id:
        _told[trace_id] = span_id
        if len(_told) > 2 * _MAX_TRACES:
            _trim(_told)


def root_of(trace_id: int) -> int:
    """A span of the trace to link: its root when known, else its first span here; 0: none."""
    return _roots.get(trace_id) or _told.get(trace_id) or _firsts.get(trace_id) or 0


def real_root_of(trace_id: int) -> int:
    """The span id of the trace's own root (no parent), when known here; 0 when unknown.

    Not the first span of a trace continued from elsewhere: its root lives upstream.
    """
    return _roots.get(trace_id) or _told.get(trace_id) or 0


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
