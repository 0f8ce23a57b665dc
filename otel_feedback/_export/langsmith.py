"""LangSmithFeedbackExporter: each record becomes LangSmith feedback on the run it judges.

LangSmith ingests OTLP spans as runs whose id is the span id right-aligned in 16 zero bytes
(``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``): exactly the record's
``run_id``. Records go to ``POST /feedback`` one by one, in the JSON the ``langsmith`` client
sends there, with ``session_id`` filled from the project named by ``LANGSMITH_PROJECT``
(looked up once). A feedback id LangSmith holds already (409) is updated in place, as the
client's ``update_feedback`` does (``PATCH /feedback/{id}``): a resubmission or a re-import
replaces the score instead of being ignored.

What LangSmith's ``trace_id`` is for an OTLP trace is not the record's ``trace_id``: LangSmith
calls ``trace_id`` the id of the trace's root run, which for an OTLP trace is derived from the
root *span's* id. Feedback on a whole trace therefore goes to the root run, whose id the
record carries as ``langsmith.trace.id`` in ``Feedback.run_attributes`` whenever the root was
known where it was recorded (the root span started in that process, or a feedback token
minted inside the trace named it). Without it the record is refused with the reason:
LangSmith's API finds runs by its own ids, never by an OpenTelemetry trace id (its run
schema and its run filters hold none; ``langsmith/schemas.py``, ``Client.list_runs``), so
the root cannot be looked up there. A span that names its LangSmith ids itself
(``langsmith.span.id``, ``langsmith.trace.id``) is used as it says.

Plain HTTP (``requests``): the ``langsmith`` client would bring its own background thread,
queue and retries, which the engine already provides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

from otel_feedback import _environment as env
from otel_feedback._attributes import ATTR_LANGSMITH_RUN_ID, ATTR_LANGSMITH_TRACE_ID
from otel_feedback._export._http import (
    DELIVERED,
    JsonHttp,
    PerRecordExporter,
    Reply,
    Step,
    Verdict,
    deliver_each,
    refusal,
    unavailable,
)
from otel_feedback._export.base import ExportOutcome
from otel_feedback._kinds import annotator_kind
from otel_feedback._model import Feedback

__all__ = [
    "LangSmithFeedbackExporter",
    "feedback_create_of",
    "feedback_update_of",
    "langsmith_ids_of",
    "langsmith_score",
    "langsmith_source_type",
]

_VENDOR: Final = "LangSmith"
# The source types LangSmith's API takes (its OpenAPI SourceType); the Python client's own
# enum holds only api and model.
_LANGSMITH_TYPES: Final = frozenset({"api", "model", "app", "auto_eval"})
_BY_KIND: Final = {"HUMAN": "app", "LLM": "model", "CODE": "api"}
ORIGINAL_SOURCE_TYPE: Final = "otel_feedback.source_type"
"""``feedback_source.metadata`` key holding a source type LangSmith does not take as given."""
ORIGINAL_SCORE: Final = "otel_feedback.score"
"""``feedback_source.metadata`` key holding a score LangSmith stores only to 4 decimals."""
WHOLE_TRACE_REFUSED: Final = (
    "LangSmith keeps feedback on a whole trace on its root run, whose id is the root span's "
    "id, and this trace's root was not seen where the feedback was recorded (LangSmith's API "
    "cannot find a run by OpenTelemetry trace id): record it with run_id= the root span's id "
    "(RunHandle.root_run_id), or through a token minted inside the trace"
)
# The fields the client's update_feedback changes (PATCH /feedback/{id}).
_UPDATED: Final = ("score", "value", "correction", "comment")


def langsmith_source_type(source_type: str | None) -> str:
    """A source type LangSmith takes: its own four as given, others by kind (app/model/api)."""
    kind = (source_type or "api").lower()
    if kind in _LANGSMITH_TYPES:
        return kind
    return _BY_KIND[annotator_kind(kind)]


def langsmith_score(score: bool | float | None) -> bool | float | None:
    """The score as the client sends it: a float rounded to the 4 decimals LangSmith stores."""
    return round(score, 4) if isinstance(score, float) else score


def feedback_create_of(record: Feedback, session_id: UUID | None) -> dict[str, Any]:
    """The ``POST /feedback`` body of a record that names its run (no nulls, as the client)."""
    body: dict[str, Any] = record.model_dump(mode="json", exclude={"trace_id"})
    run_id, trace_id = langsmith_ids_of(record)
    body["run_id"] = None if run_id is None else str(run_id)
    if trace_id is not None:
        body["trace_id"] = str(trace_id)
    source = body.get("feedback_source") or {"type": "api"}
    metadata = dict(source.get("metadata") or {})
    mapped = langsmith_source_type(source.get("type"))
    if mapped != source.get("type"):
        metadata[ORIGINAL_SOURCE_TYPE] = source.get("type")
    score = langsmith_score(record.score)
    if score != record.score:
        metadata[ORIGINAL_SCORE] = record.score  # kept whole, not lost to the rounding
    body["score"] = score
    body["feedback_source"] = {
        "type": mapped,
        "metadata": metadata,
        **({"user_id": source["user_id"]} if source.get("user_id") is not None else {}),
    }
    if body.get("session_id") is None and session_id is not None:
        body["session_id"] = str(session_id)
    body["extend_trace_retention"] = True  # as the client sends it
    return {name: value for name, value in body.items() if value is not None}


def feedback_update_of(record: Feedback) -> dict[str, Any]:
    """The ``PATCH /feedback/{id}`` body: the fields ``update_feedback`` changes, all of them.

    The record is the whole new state: a field it leaves empty is cleared (``null``), as
    ``update_feedback(..., comment=None)`` clears it.
    """
    body = record.model_dump(mode="json", include=set(_UPDATED))
    body["score"] = langsmith_score(record.score)
    return {name: body.get(name) for name in _UPDATED}


def langsmith_ids_of(record: Feedback) -> tuple[UUID | None, UUID | None]:
    """The run and trace ids LangSmith gave the judged span (or trace).

    A span may name its LangSmith run and trace itself (``langsmith.span.id``,
    ``langsmith.trace.id``, UUIDs): those win. Otherwise the run is the record's ``run_id``
    (LangSmith's rule for OTLP spans) and the trace is unknown. Feedback on a whole trace
    goes to the root run, both run and trace, when the record carries it (its
    ``langsmith.trace.id``); else it has no run.
    """
    run = record.run_attributes
    if record.run_id is None:
        root = _uuid_or_none(run.get(ATTR_LANGSMITH_TRACE_ID))
        return root, root
    trace_id = _uuid_or_none(run.get(ATTR_LANGSMITH_TRACE_ID))
    return _uuid_or_none(run.get(ATTR_LANGSMITH_RUN_ID)) or record.run_id, trace_id


def _uuid_or_none(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        parsed = UUID(value)
    except ValueError:
        return None  # not LangSmith's own id: the span id's rule applies
    return parsed if parsed.int else None  # the nil UUID names no run


class LangSmithFeedbackExporter(PerRecordExporter):
    """Sends each record to LangSmith's feedback API, on the run its span became.

    The run id is the record's ``run_id`` (LangSmith's rule for OTLP spans); ``session_id``
    is the id of the project ``LANGSMITH_PROJECT`` names, looked up once (a record that
    carries its own ``session_id`` keeps it). ``feedback_source.type`` is one LangSmith takes:
    ``api``, ``model``, ``app`` and ``auto_eval`` as given; people (``human``, ``user``, ...)
    become ``app``, judges (``llm``, ``judge``) ``model``, anything else ``api``, the given
    type kept in ``feedback_source.metadata["otel_feedback.source_type"]``.

    Feedback on a whole trace goes to the trace's root run when the record carries its id
    (the root span started in the recording process, or a token minted inside the trace
    named it); otherwise it is refused with that reason, as LangSmith cannot look the root
    up by an OpenTelemetry trace id. A float score is rounded to the 4 decimals LangSmith
    stores, as its client does; the exact score stays in
    ``feedback_source.metadata["otel_feedback.score"]``.

    Outcomes: delivered on 2xx; a feedback id LangSmith has already (409) is updated in
    place (``PATCH /feedback/{id}``, as the client's ``update_feedback``: score, value,
    correction and comment become the record's), so resubmitting is an update; sent again later
    when LangSmith is down, slow, busy (429, 5xx, an answer cut off mid-body; after the
    ``Retry-After`` it sends, when it sends one), has not ingested the run yet (404), or
    the project does not exist yet (it appears with its first trace); refused with the
    reason on other answers, and at once for the whole batch when the key is refused.

    Example::

        FeedbackSpanProcessor(LangSmithFeedbackExporter(project="support-bot"))

    Args:
        endpoint: LangSmith's API URL; default ``LANGSMITH_ENDPOINT``, else
            ``https://api.smith.langchain.com``.
        api_key: default ``LANGSMITH_API_KEY``. Never logged.
        project: the project whose id fills ``session_id``; default ``LANGSMITH_PROJECT``,
            else ``default``.
        project_id: that id, when known: no lookup is made.
        timeout: seconds per HTTP request.

    Raises:
        ValueError: no API key, an endpoint that is not an HTTP URL, or a non-positive
            timeout.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        project: str | None = None,
        project_id: UUID | str | None = None,
        timeout: float = 10.0,
    ) -> None:
        key = api_key if api_key is not None else env.langsmith_api_key()
        if not key:
            raise ValueError(f"api_key: missing; pass it or set {env.LANGSMITH_API_KEY}")
        self._http = JsonHttp(
            endpoint or env.langsmith_endpoint(),
            vendor=_VENDOR,
            headers={"x-api-key": key},
            timeout=timeout,
            setting=f"endpoint (or {env.LANGSMITH_ENDPOINT})",
        )
        self._project = project or env.langsmith_project()
        self._project_id = UUID(str(project_id)) if project_id is not None else None

    def __repr__(self) -> str:
        return (
            f"LangSmithFeedbackExporter(endpoint={self._http.base_url!r}, "
            f"project={self._project!r})"
        )

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send each record to ``POST /feedback``; see the class for the outcomes."""
        if self._project_id is None and any(r.session_id is None for r in batch):
            step = self._look_up_project()
            if step is not None:
                return deliver_each(batch, lambda _record: step)
        return deliver_each(batch, self._send)

    def _look_up_project(self) -> Step | None:
        """Find the project's id, as the client's ``read_project``; a step when that fails."""
        reply = self._http.request("GET", "/sessions", params={"name": self._project, "limit": "1"})
        if reply.ok:
            found = reply.json()
            if isinstance(found, list) and found and isinstance(found[0], dict):
                try:
                    self._project_id = UUID(str(found[0].get("id")))
                except ValueError:
                    pass
                else:
                    return None
                return Step(
                    Verdict.REFUSED_REST, f"LangSmith answered no project id: {reply.text[:200]}"
                )
            # The project appears with the first trace sent to it.
            return Step(Verdict.RETRY_REST)
        if reply.transient:
            return unavailable(reply)
        reason = refusal(_VENDOR, reply, credentials=env.LANGSMITH_API_KEY).reason
        return Step(Verdict.REFUSED_REST, f"looking up project {self._project!r}: {reason}")

    def _send(self, record: Feedback) -> Step:
        if langsmith_ids_of(record)[0] is None:
            return Step(Verdict.REFUSED, WHOLE_TRACE_REFUSED)
        reply = self._http.request(
            "POST", "/feedback", body=feedback_create_of(record, self._project_id)
        )
        if reply.status == 409:  # this feedback id is there already: it becomes this record
            reply = self._http.request(
                "PATCH", f"/feedback/{record.id}", body=feedback_update_of(record)
            )
        return _verdict(reply)


def _verdict(reply: Reply) -> Step:
    if reply.ok:
        return DELIVERED
    if reply.transient:
        return unavailable(reply)
    if reply.status == 404:  # the run is not ingested yet
        return Step(Verdict.RETRY, retry_after_s=reply.retry_after_s)
    return refusal(_VENDOR, reply, credentials=env.LANGSMITH_API_KEY)
