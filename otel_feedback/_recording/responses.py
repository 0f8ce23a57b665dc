"""The judged spans' correlation keys, for feedback that names its span by ids after it ended.

Feedback on a live span copies the span's ``gen_ai.response.id`` (and LangSmith's ids) as
the span ends. Feedback given later by ids or a ``traceparent`` names only the span: so the
processors note these attributes of every span that has them as it ends here, and a record
about such a span, by whatever reference, carries them. Each record also carries its
evaluation target (``gen_ai.evaluation.target``): the judged span's agent
(``gen_ai.agent.name``), or else the span's name, which Logfire's live evaluations group
results by. Late feedback by ids on a span without correlation keys has no target: noting
every span would cost each one a dict entry.

Noting runs for every span that ends, on the application's thread: three dict look-ups for
a span without correlation keys; plain dicts, no lock on that path, O(1) per span, and the
older half dropped at once when the dict holds twice the bound. A forked child keeps what
its parent saw (the spans are the same) and gets a lock of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from itertools import islice
from typing import Any

from otel_feedback import _attributes as a
from otel_feedback._codec import run_attributes_of
from otel_feedback._sdk import attribute_dict

__all__ = ["note_response", "noted_run", "run_of", "run_of_span"]

_MAX_SPANS = 4096
"""The runs of at least this many of the latest spans noted are kept (at most twice as many)."""
# span id -> (trace id, the span's run attributes). Keyed by the span id alone: a 64-bit
# random number; the trace id is checked on reading.
_runs: dict[int, tuple[int, Mapping[str, str]]] = {}
_trimming = threading.Lock()
_NOTHING: Mapping[str, Any] = {}
# Module names, read on every span that ends: a global each rather than an attribute lookup.
_RESPONSE_ID, _LANGSMITH_RUN_ID, _LANGSMITH_TRACE_ID = (
    a.ATTR_RESPONSE_ID,
    a.ATTR_LANGSMITH_RUN_ID,
    a.ATTR_LANGSMITH_TRACE_ID,
)


def _new_lock() -> None:
    # A thread of the parent may have held it at the fork: the child's copy would stay held.
    global _trimming  # noqa: PLW0603
    _trimming = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)


def note_response(span: Any) -> None:
    """Remember the run attributes of ``span``, which ended, when it has correlation keys.

    Called by the processors for every span: a span without ``gen_ai.response.id`` or
    LangSmith's ids (most spans) costs three dict look-ups.
    """
    attributes = attribute_dict(span)
    if attributes is None:
        attributes = span.attributes or _NOTHING
    if not attributes or (
        _RESPONSE_ID not in attributes
        and _LANGSMITH_RUN_ID not in attributes
        and _LANGSMITH_TRACE_ID not in attributes
    ):
        return
    run = run_of_span(span)
    context = span.context
    if run is None or context is None:
        return
    _runs[context.span_id] = (context.trace_id, run)
    if len(_runs) > 2 * _MAX_SPANS:
        _trim()


def noted_run(trace_id: int, span_id: int) -> Mapping[str, str] | None:
    """The run attributes noted for the span, when it ended here with correlation keys."""
    noted = _runs.get(span_id)
    return noted[1] if noted is not None and noted[0] == trace_id else None


def run_of_span(span: Any) -> dict[str, str] | None:
    """The judged span's run attributes: its correlation keys and its evaluation target.

    The target is the one the span names itself (``gen_ai.evaluation.target``), if any,
    else the span's ``gen_ai.agent.name`` when it runs an agent, else the span's name. None
    for a span with none of these (a span that is not the SDK's may lack a name).
    """
    attributes = attribute_dict(span)
    if attributes is None:
        found = getattr(span, "attributes", None)
        attributes = found if isinstance(found, Mapping) else {}
    return run_of(attributes, getattr(span, "name", None))


def run_of(attributes: Mapping[str, Any], name: object) -> dict[str, str] | None:
    """:func:`run_of_span` for a span known by its attributes and name (read from a file)."""
    run = run_attributes_of(attributes)
    if run is not None and a.ATTR_EVALUATION_TARGET in run:
        return run
    target = _target_of(name, attributes)
    if target is None:
        return run
    if run is None:
        return {a.ATTR_EVALUATION_TARGET: target}
    run[a.ATTR_EVALUATION_TARGET] = target
    return run


def _target_of(name: object, attributes: Mapping[str, Any]) -> str | None:
    """The span's own evaluation target, else its agent's name, else its name."""
    for attribute in (a.ATTR_EVALUATION_TARGET, a.ATTR_AGENT_NAME):
        target = attributes.get(attribute)
        if target.__class__ is str and target:
            return str(target)
    return name if name.__class__ is str and name else None


def _trim() -> None:
    with _trimming:
        if len(_runs) <= 2 * _MAX_SPANS:
            return
        try:
            newest = list(islice(_runs.items(), len(_runs) - _MAX_SPANS, None))
        except RuntimeError:
            return  # another thread added one meanwhile: trimmed at the next span
        # Rebuilt rather than deleted from the front (see roots.py). A span noted meanwhile
        # may be forgotten: its late feedback then goes without its correlation keys.
        _runs.clear()
        _runs.update(newest)
