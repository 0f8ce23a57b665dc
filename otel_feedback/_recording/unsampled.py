"""Feedback in a trace that is not recorded: which FeedbackSpanProcessors take it.

A span its sampler drops is a ``NonRecordingSpan``: no processor sees it, and nothing in it
says which TracerProvider made it. Feedback recorded in it cannot ride a span, so it goes
straight to FeedbackSpanProcessors, and they should be those of the provider that made the
span. To know it, the global provider's sampler notes the trace ids it drops (from the
moment a FeedbackSpanProcessor is made, or feedback first looks, with that provider global;
:func:`watch` does it for any other provider): a bounded map from trace id to the provider's
processors. Which processors take the record:

1. a span made in this process (its context is not remote) in a trace that a watched
   provider dropped: that provider's FeedbackSpanProcessors, and no other's;
2. a span made in this process in a trace the global provider, watched already, did not
   drop: another provider made it, so the FeedbackSpanProcessors of the other providers take
   it (all of them, when several providers besides the global one have one: which provider
   each belongs to cannot be known), and none of the global provider's;
3. otherwise (a ``traceparent`` or ids from elsewhere, a global provider that is not the
   SDK's): the global provider's FeedbackSpanProcessors, else every one in the process.

Limits: a trace dropped before its provider was watched, or among more than the latest
4,096 to 8,192 dropped traces, falls under 2 or 3; the first feedback that finds the global
provider unwatched falls under 3. Watching costs every span of the watched provider one more
call (its sampler's); noting a drop, one dict entry.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from itertools import islice
from typing import TypeVar

from opentelemetry import trace

from otel_feedback._sdk import processors_of_active, processors_of_provider, watch_drops

__all__ = ["NO_PROCESSOR", "NO_PROCESSOR_OF_PROVIDER", "sinks_for_unrecorded", "watch"]

_Sink = TypeVar("_Sink")

NO_PROCESSOR = (
    "no FeedbackSpanProcessor is running (none was set up, or each was shut down; see "
    "otel_feedback.configure())"
)
NO_PROCESSOR_OF_PROVIDER = (
    "the TracerProvider that made its span has no FeedbackSpanProcessor running (none was "
    "added to it, or it was shut down), though another provider has one"
)

_MAX_TRACES = 4096
"""The dropped traces of at least this many of the latest are kept (at most twice as many)."""
# trace id -> the active span processor of the provider whose sampler dropped it.
_dropped: dict[int, object] = {}
_trimming = threading.Lock()


def _new_lock() -> None:
    # A thread of the parent may have held it at the fork: the child's copy would stay held.
    global _trimming  # noqa: PLW0603
    _trimming = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)


def watch(provider: object) -> str:
    """Note the traces ``provider``'s sampler drops from now on (see ``_sdk.watch_drops``)."""
    return watch_drops(provider, _note_drop)


def _note_drop(active: object, trace_id: int) -> None:
    _dropped[trace_id] = active
    if len(_dropped) > 2 * _MAX_TRACES:
        _trim()


def sinks_for_unrecorded(
    trace_id: int, *, local: bool, live: Sequence[_Sink]
) -> tuple[list[_Sink], str]:
    """The FeedbackSpanProcessors among ``live`` that take feedback in an unrecorded trace.

    ``local``: the judged span was made in this process. Returns the processors and, when
    there are none, why (a sentence for the warning).
    """
    if not live:
        return [], NO_PROCESSOR
    provider = trace.get_tracer_provider()
    global_processors = processors_of_provider(provider)
    watched_before = global_processors is not None and watch(provider) == "watching"
    if local:
        maker = _dropped.get(trace_id)
        if maker is not None:
            theirs = processors_of_active(maker)
            made = [p for p in live if p in theirs]
            return made, "" if made else NO_PROCESSOR_OF_PROVIDER
        if watched_before:
            # The global provider, watched already, did not drop it: another provider made it.
            others = [p for p in live if p not in global_processors]  # type: ignore[operator]
            return others, "" if others else NO_PROCESSOR_OF_PROVIDER
    if global_processors is None:
        return list(live), ""
    own = [p for p in live if p in global_processors]
    return (own or list(live)), ""


def _trim() -> None:
    with _trimming:
        if len(_dropped) <= 2 * _MAX_TRACES:
            return
        try:
            newest = list(islice(_dropped.items(), len(_dropped) - _MAX_TRACES, None))
        except RuntimeError:
            return  # another thread added one meanwhile: trimmed at the next drop
        _dropped.clear()
        _dropped.update(newest)
