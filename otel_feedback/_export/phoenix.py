"""PhoenixFeedbackExporter: each record becomes an Arize Phoenix span (or trace) annotation.

Phoenix shows annotations in its own feedback views. The span an annotation is about must
have been ingested first, and spans and feedback leave the application separately, so an
annotation Phoenix cannot place yet (404), or that finds Phoenix down, is kept and retried in
the background until ``retry_for`` has passed. Plain HTTP through the standard library.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

from otel_feedback import _environment as env
from otel_feedback._export.base import FeedbackExporter, FeedbackExportResult
from otel_feedback._ids import span_hex, trace_hex
from otel_feedback._log import logger, warn_once
from otel_feedback._model import Feedback

__all__ = ["PhoenixFeedbackExporter", "annotation_of"]

_HUMAN_SOURCES: Final = frozenset({"app", "human", "user", "reviewer", "annotator"})
_LLM_SOURCES: Final = frozenset({"model", "llm", "judge"})
# Record fields that the annotation carries itself; the rest goes to its metadata.
_IN_ANNOTATION: Final = frozenset({"key", "score", "comment", "trace_id", "run_id"})


def annotator_kind(source_type: str | None) -> str:
    """HUMAN for people, LLM for model judges, CODE for programmatic evaluators and APIs."""
    kind = (source_type or "").lower()
    if kind in _HUMAN_SOURCES:
        return "HUMAN"
    if kind in _LLM_SOURCES:
        return "LLM"
    return "CODE"


def annotation_of(record: Feedback) -> dict[str, Any]:
    """The Phoenix annotation of one record (``span_id`` or ``trace_id`` set)."""
    score = record.score
    label = record.value if isinstance(record.value, str) else None
    data = record.model_dump(mode="json", exclude=set(_IN_ANNOTATION))
    metadata = {k: v for k, v in data.items() if v is not None}
    if label is not None:
        metadata.pop("value", None)
    annotation: dict[str, Any] = {
        "name": record.key,
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


class _Pending:
    __slots__ = ("annotation", "since")

    def __init__(self, annotation: dict[str, Any], since: float) -> None:
        self.annotation = annotation
        self.since = since


class PhoenixFeedbackExporter(FeedbackExporter):
    """Writes each record as a Phoenix annotation on the span (or trace) it judges.

    name = key; score; label = a string value; explanation = comment; annotator kind from
    ``feedback_source.type`` (HUMAN for ``app``, LLM for ``model``, CODE otherwise);
    identifier = the feedback id, so a resent record updates its annotation; metadata =
    the rest of the record.

    Example::

        FeedbackSpanProcessor(PhoenixFeedbackExporter(endpoint="http://localhost:6006"))

    Args:
        endpoint: Phoenix's base URL; default ``PHOENIX_COLLECTOR_ENDPOINT``, else
            ``http://localhost:6006``.
        api_key: sent as a bearer token; default ``PHOENIX_API_KEY``.
        timeout: seconds per HTTP request.
        retry_for: seconds an annotation is retried while its span is not in Phoenix yet
            or Phoenix is unreachable; then it is dropped, counted and logged once.
        retry_interval: seconds between background retries.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        retry_for: float = 60.0,
        retry_interval: float = 1.0,
    ) -> None:
        for name, number in (
            ("timeout", timeout),
            ("retry_for", retry_for),
            ("retry_interval", retry_interval),
        ):
            if not number > 0:
                raise ValueError(f"{name}: must be positive, got {number!r}")
        self._base = (endpoint or env.phoenix_endpoint()).rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        key = api_key if api_key is not None else env.phoenix_api_key()
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._timeout = timeout
        self._retry_for = retry_for
        self._retry_interval = retry_interval
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()  # one delivery attempt at a time
        self._wake = threading.Event()
        self._stopped = False
        self._dropped = 0
        self._retrier = threading.Thread(
            target=self._retry_loop, name="otel_feedback.PhoenixFeedbackExporter", daemon=True
        )
        self._retrier.start()

    def __repr__(self) -> str:
        # Never the API key.
        return f"PhoenixFeedbackExporter(endpoint={self._base!r})"

    @property
    def dropped_records(self) -> int:
        """Annotations given up on: refused by Phoenix, or not placed within ``retry_for``."""
        return self._dropped

    @property
    def pending_records(self) -> int:
        """Annotations waiting for their span to reach Phoenix, or for Phoenix to answer."""
        return len(self._pending)

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        """Send ``batch``; what Phoenix cannot place yet is retried in the background."""
        if self._stopped:
            return FeedbackExportResult.FAILURE
        now = time.monotonic()
        with self._lock:
            self._pending.extend(_Pending(annotation_of(record), now) for record in batch)
            self._attempt()
        if self._pending:
            self._wake.set()
        return FeedbackExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Retry until every annotation is placed or dropped; False if time ran out first."""
        deadline = time.monotonic() + timeout_millis / 1000
        while True:
            with self._lock:
                self._attempt()
                if not self._pending:
                    return True
            if time.monotonic() + self._retry_interval > deadline:
                return False
            time.sleep(self._retry_interval)  # waiting for Phoenix to ingest the spans

    def shutdown(self) -> None:
        """Place what can be placed within ``retry_for``, then stop."""
        if self._stopped:
            return
        self.force_flush(int(self._retry_for * 1000))
        self._stopped = True
        self._wake.set()
        self._retrier.join(self._timeout)
        with self._lock:
            if self._pending:
                self._drop(len(self._pending), "the exporter shut down before Phoenix took them")
                self._pending.clear()

    def _retry_loop(self) -> None:
        while not self._stopped:
            self._wake.wait()
            if self._stopped:
                return
            time.sleep(self._retry_interval)
            with self._lock:
                self._attempt()
                if not self._pending:
                    self._wake.clear()

    def _attempt(self) -> None:
        """One delivery round over everything pending; called with the lock held."""
        now = time.monotonic()
        expired = [p for p in self._pending if now - p.since > self._retry_for]
        if expired:
            self._drop(len(expired), f"Phoenix did not take them within {self._retry_for:g}s")
        waiting = [p for p in self._pending if now - p.since <= self._retry_for]
        retry: list[_Pending] = []
        for route, group in (
            ("/v1/span_annotations", [p for p in waiting if "span_id" in p.annotation]),
            ("/v1/trace_annotations", [p for p in waiting if "span_id" not in p.annotation]),
        ):
            if group:
                retry.extend(self._send(route, group))
        self._pending = retry

    def _send(self, route: str, group: list[_Pending]) -> list[_Pending]:
        """Post ``group``; return what is worth retrying."""
        status = self._post(route, [p.annotation for p in group])
        if status == 200:
            return []
        if status == 404 and len(group) > 1:
            # Some span is not in Phoenix yet: the batch is refused whole, so find which.
            return [p for p in group for kept in self._send(route, [p]) if kept is p]
        if status in (404, 429, 0) or status >= 500:
            return group
        self._drop(len(group), f"Phoenix refused them (HTTP {status})")
        return []

    def _post(self, route: str, annotations: list[dict[str, Any]]) -> int:
        """The HTTP status, or 0 when Phoenix could not be reached."""
        request = urllib.request.Request(  # noqa: S310 - the URL is the configured endpoint
            f"{self._base}{route}?sync=true",
            data=json.dumps({"data": annotations}).encode(),
            headers=self._headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, ValueError) as error:
            logger.debug("Phoenix at %s is not reachable: %s", self._base, error)
            return 0

    def _drop(self, count: int, reason: str) -> None:
        self._dropped += count
        warn_once(
            f"phoenix-dropped:{reason}",
            "Dropped %d Phoenix annotation(s): %s (later drops are counted in "
            "PhoenixFeedbackExporter.dropped_records)",
            count,
            reason,
        )
