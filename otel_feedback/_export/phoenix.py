"""PhoenixFeedbackExporter: each record becomes an Arize Phoenix span (or trace) annotation.

Phoenix shows annotations in its own feedback views. The span an annotation is about must
have been ingested first, and spans and feedback leave the application separately: Phoenix
answers 404 for annotations on spans it does not have yet, naming them, and those are
handed back to the engine to try again later. Plain HTTP through the standard library.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from otel_feedback import _environment as env
from otel_feedback._export.base import (
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
)
from otel_feedback._ids import span_hex, trace_hex
from otel_feedback._kinds import annotator_kind
from otel_feedback._log import logger
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
    later (the processor retries it with backoff, for ``retry_for_millis``).

    Example::

        FeedbackSpanProcessor(PhoenixFeedbackExporter(endpoint="http://localhost:6006"))

    Args:
        endpoint: Phoenix's base URL; default ``PHOENIX_COLLECTOR_ENDPOINT``, else
            ``http://localhost:6006``.
        api_key: sent as a bearer token; default ``PHOENIX_API_KEY``.
        timeout: seconds per HTTP request.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout: must be positive, got {timeout!r}")
        self._base = (endpoint or env.phoenix_endpoint()).rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        key = api_key if api_key is not None else env.phoenix_api_key()
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._timeout = timeout
        self._stopped = False

    def __repr__(self) -> str:
        # Never the API key.
        return f"PhoenixFeedbackExporter(endpoint={self._base!r})"

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send ``batch``: one request per route, two when Phoenix lacks some spans."""
        if self._stopped:
            return FeedbackExportResult.FAILURE
        unready: list[Feedback] = []  # Phoenix answered, but lacks their spans yet
        unavailable: list[Feedback] = []  # Phoenix did not answer, or asked to come back
        refused: list[tuple[Feedback, str]] = []
        spans = [r for r in batch if r.run_id is not None]
        traces = [r for r in batch if r.run_id is None]
        for route, group in (("/v1/span_annotations", spans), ("/v1/trace_annotations", traces)):
            if group:
                self._send(route, group, _Sorted(unready, unavailable, refused))
        if len(unavailable) == len(batch):
            return FeedbackExportResult.RETRY
        if not unready and not unavailable and not refused:
            return FeedbackExportResult.SUCCESS
        return PartialFeedbackExport(retry=unready + unavailable, refused=refused)

    def shutdown(self) -> None:
        """Refuse later exports."""
        self._stopped = True

    def _send(
        self, route: str, group: list[Feedback], into: _Sorted, *, missing_known: bool = False
    ) -> None:
        """Post ``group``; sort what did not land ``into`` its lists."""
        status, body = self._post(route, [annotation_of(r) for r in group])
        if status == 200:
            return
        if status == 404:
            # Phoenix names the spans it does not have yet: those wait, the rest go again.
            missing = set(_HEX_ID.findall(body))
            waiting = [r for r in group if _target_hex(r) in missing]
            rest = [r for r in group if _target_hex(r) not in missing]
            if missing_known or not waiting or not rest:
                into.unready.extend(group)
                return
            into.unready.extend(waiting)
            self._send(route, rest, into, missing_known=True)
            return
        if status in (0, 408, 429) or status >= 500:
            into.unavailable.extend(group)
            return
        if len(group) > 1 and status not in (401, 403):
            # One annotation Phoenix refuses must not take the others with it.
            middle = len(group) // 2
            self._send(route, group[:middle], into, missing_known=missing_known)
            self._send(route, group[middle:], into, missing_known=missing_known)
            return
        why = "the API key was refused" if status in (401, 403) else _short(body)
        into.refused.extend((r, f"Phoenix answered HTTP {status}: {why}") for r in group)

    def _post(self, route: str, annotations: list[dict[str, Any]]) -> tuple[int, str]:
        """The HTTP status and body, or ``(0, reason)`` when Phoenix could not be reached."""
        request = urllib.request.Request(  # noqa: S310 - the URL is the configured endpoint
            f"{self._base}{route}?sync=true",
            data=json.dumps({"data": annotations}).encode(),
            headers=self._headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return int(response.status), ""
        except urllib.error.HTTPError as error:
            return int(error.code), error.read(4096).decode("utf-8", "replace")
        except (OSError, ValueError) as error:
            logger.debug("Phoenix at %s is not reachable: %s", self._base, error)
            return 0, str(error)


class _Sorted(NamedTuple):
    unready: list[Feedback]
    unavailable: list[Feedback]
    refused: list[tuple[Feedback, str]]


def _target_hex(record: Feedback) -> str:
    if record.run_id is not None:
        return span_hex(record.run_id.int)
    return trace_hex(record.trace_id.int) if record.trace_id is not None else ""


def _short(body: str) -> str:
    text = " ".join(body.split())
    return text[:200] if text else "no detail"
