"""The root spans of recent traces: feedback on a whole trace links one of its real spans.

OpenInference wants a carrier of trace-level feedback linked to a span of the trace, its
root preferred. A record about a trace names only the trace, so the processors note the
root of each trace whose spans end in this process (or, for a trace continued from
elsewhere, its first span here) and the carrier links that span.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Final

__all__ = ["CARRIER_SCOPE", "note_root", "root_of"]

CARRIER_SCOPE: Final = "otel_feedback"
"""The instrumentation scope of carrier spans (the tracer that makes them)."""

_MAX_TRACES = 4096  # a few hundred KB at most; older traces are forgotten first
# trace id -> (span id, whether it is the trace's true root rather than a local one)
# An OrderedDict: dropping a plain dict's oldest key (next(iter(d))) walks the holes that
# earlier deletions left at its front, five times slower here.
_roots: OrderedDict[int, tuple[int, bool]] = OrderedDict()
_lock = threading.Lock()


def _fresh_lock() -> None:
    # A child forked while another thread held the lock would wait for it forever.
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock)


def note_root(span: Any) -> None:
    """Remember ``span``, which ended, when it is the root of its trace in this process.

    Called by the processors for every span: spans with a local parent cost one check.
    """
    parent = span.parent
    if parent is not None and not parent.is_remote:
        return
    context = span.context
    if context is None or _is_carrier(span):
        return
    known = _roots.get(context.trace_id)
    if known is not None and (known[1] or parent is not None):
        return  # a true root is never replaced, and a local one only by the true one
    with _lock:
        _roots[context.trace_id] = (context.span_id, parent is None)
        if len(_roots) > _MAX_TRACES:
            _roots.popitem(last=False)


def _is_carrier(span: Any) -> bool:
    # Feedback's own carriers are not the trace's spans: a carrier with no parent (trace
    # feedback on a trace not seen here) or with a remote one must not pass for its root.
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and scope.name == CARRIER_SCOPE


def root_of(trace_id: int) -> int:
    """The span id of the trace's root as far as this process saw it; 0 when unknown."""
    known = _roots.get(trace_id)
    return 0 if known is None else known[0]
