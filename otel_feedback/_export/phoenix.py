"""PhoenixFeedbackExporter: each record becomes an Arize Phoenix span (or trace) annotation.

Phoenix shows annotations in its own feedback views. The span an annotation is about must
have been ingested first, and spans and feedback leave the application separately: Phoenix
answers 404 for annotations on spans it does not have yet, naming them, and those are
handed back to the engine to try again later. Plain HTTP through the exporters' shared
client (:mod:`otel_feedback._export._http`): the same rule for what is transient, the same
bounded reading of answers, and ``Retry-After`` honoured, as the other vendor exporters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from otel_feedback import _environment as env
from otel_feedback._export._http import BatchRefusedError, JsonHttp, Reply
from otel_feedback._export.base import (
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
    RetryLater,
)
from otel_feedback._ids import span_hex, trace_hex
from otel_feedback._kinds import annotator_kind
from otel_feedback._model import Feedback

__all__ = ["PhoenixFeedbackExporter", "annotation_of"]

# Record fields that the annotation carries itself; the rest goes to its metadata.
_IN_ANNOTATION: Final = frozenset({"key", "score", "comment", "trace_id", "run_id"})
# Annotation names Phoenix keeps for itself (it answers 400): such a key is sent under
# RESERVED_PREFIX + key, with the key itself in the metadata.
_RESERVED_NAMES: Final = frozenset({"note"})
RESERVED_PREFIX: Final = "feedback."
# Phoenix's 404 names the spans (16 hex) or traces (32 hex) it does not have.
_HEX_ID = re.compile(r"\b[0-9a-f]{16}(?:[0-9a-f]{16})?\b")


def annotation_of(record: Feedback) -> dict[str, Any]:
    """The Phoenix annotation of one record (``span_id`` or ``trace_id`` set)."""
    score = record.score
    label = record.value if isinstance(record.value, str) else None
    data = record.model_dump(mode="json", exclude=set(_IN_ANNOTATION))
    metadata = {k: v for k, v in data.items() if v is not None}
    if label is not None:
        metadata.pop("value", None)
    name = record.key
    if name in _RESERVED_NAMES:
        metadata["key"] = name
        name = RESERVED_PREFIX + name
    annotation: dict[str, Any] = {
        "name": name,
        "annotator_kind": annotator_kind(
            record.feedback_source.type if record.feedback_source else None
        ),
        "result": {
            "score": None if score is None else float(score),
            "label": label,
            "explanation": record.comment,
        },
        "metadata": metadata,
        # The feedback id: a record sent twice updates its annotation instead of adding one.
        "identifier": str(record.id),
    }
    if record.run_id is not None:
        annotation["span_id"] = span_hex(record.run_id.int)
    elif record.trace_id is not None:
        annotation["trace_id"] = trace_hex(record.trace_id.int)
    return annotation


class PhoenixFeedbackExporter(FeedbackExporter):
    """Writes each record as a Phoenix annotation on the span (or trace) it judges.

    name = key (a key Phoenix reserves, ``note``, becomes ``feedback.note``); score; label =
    a string value; explanation = comment; annotator kind from ``feedback_source.type``
    (HUMAN for ``app``, LLM for ``model``, CODE otherwise); identifier = the feedback id, so
    a resent record updates its annotation; metadata = the rest of the record.

    An annotation whose span Phoenix has not ingested yet is handed back to be tried again
    later (the processor retries it with backoff, for ``retry_for_millis``). When Phoenix is
    down, slow, busy (408, 429, 5xx) or its answer is cut off mid-body, the batch is sent
    again later, after the ``Retry-After`` Phoenix sends when it sends one. A batch Phoenix
    refuses as a whole (another 4xx) is split by the processor down to the annotation it
    refuses, which alone is dropped with Phoenix's reason.

    Example::

        FeedbackSpanProcessor(PhoenixFeedbackExporter(endpoint="http://localhost:6006"))

    Args:
        endpoint: Phoenix's base URL; default ``PHOENIX_COLLECTOR_ENDPOINT``, else
            ``http://localhost:6006``.
        api_key: sent as a bearer token; default ``PHOENIX_API_KEY``. Never logged.
        timeout: seconds per HTTP request.

    Raises:
        ValueError: an endpoint that is not an HTTP URL, or a non-positive timeout.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        key = api_key if api_key is not None else env.phoenix_api_key()
        self._http = JsonHttp(
            endpoint or env.phoenix_endpoint(),
            vendor="Phoenix",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=timeout,
            setting=f"endpoint (or {env.PHOENIX_COLLECTOR_ENDPOINT})",
        )
        self._stopped = False

    def __repr__(self) -> str:
        # Never the API key.
        return f"PhoenixFeedbackExporter(endpoint={self._http.base_url!r})"

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send ``batch``: one request per route, two when Phoenix lacks some spans.

        Raises:
            BatchRefusedError: Phoenix refused several annotations as a whole; the
                processor sends each half in turn.
        """
        if self._stopped:
            return FeedbackExportResult.FAILURE
        into = _Sorted([], [], [], [])
        spans = [r for r in batch if r.run_id is not None]
        traces = [r for r in batch if r.run_id is None]
        for route, group in (("/v1/span_annotations", spans), ("/v1/trace_annotations", traces)):
            if group:
                self._send(route, group, into)
        after = max(into.waits, default=None)
        if len(into.unavailable) == len(batch):
            return FeedbackExportResult.RETRY if after is None else RetryLater(after_s=after)
        if not into.unready and not into.unavailable and not into.refused:
            return FeedbackExportResult.SUCCESS
        return PartialFeedbackExport(
            retry=into.unready + into.unavailable, refused=into.refused, retry_after_s=after
        )

    def shutdown(self) -> None:
        """Close the connections; later exports fail."""
        self._stopped = True
        self._http.close()

    def _send(
        self, route: str, group: list[Feedback], into: _Sorted, *, missing_known: bool = False
    ) -> None:
        """Post ``group``; sort what did not land ``into`` its lists."""
        reply = self._http.request(
            "POST", route, body={"data": [annotation_of(r) for r in group]}, params=_SYNC
        )
        if reply.ok:
            return
        if reply.retry_after_s is not None and (reply.transient or reply.status == 404):
            into.waits.append(reply.retry_after_s)
        if reply.status == 404:
            # Phoenix names the spans it does not have yet: those wait, the rest go again.
            missing = set(_HEX_ID.findall(reply.text))
            waiting = [r for r in group if _target_hex(r) in missing]
            rest = [r for r in group if _target_hex(r) not in missing]
            if missing_known or not waiting or not rest:
                into.unready.extend(group)
                return
            into.unready.extend(waiting)
            self._send(route, rest, into, missing_known=True)
            return
        if reply.transient:
            into.unavailable.extend(group)
            return
        if len(group) > 1 and not reply.unauthorized:
            # One annotation Phoenix refuses must not take the others with it.
            raise BatchRefusedError(_refused(reply))
        into.refused.extend((r, _refused(reply)) for r in group)


_SYNC: Final = {"sync": "true"}


class _Sorted(NamedTuple):
    unready: list[Feedback]  # Phoenix answered, but lacks their spans yet
    unavailable: list[Feedback]  # Phoenix did not answer whole, or asked to come back
    refused: list[tuple[Feedback, str]]
    waits: list[float]  # the Retry-After of each answer that sent one


def _refused(reply: Reply) -> str:
    why = "the API key was refused" if reply.unauthorized else reply.message()
    return f"Phoenix answered HTTP {reply.status}: {why}"


def _target_hex(record: Feedback) -> str:
    if record.run_id is not None:
        return span_hex(record.run_id.int)
    return trace_hex(record.trace_id.int) if record.trace_id is not None else ""
