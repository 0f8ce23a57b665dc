"""LangSmithFeedbackExporter: each record becomes LangSmith feedback on the run it judges.

LangSmith ingests OTLP spans as runs whose id is the span id right-aligned in 16 zero bytes
(``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``): exactly the record's
``run_id``. Records go to ``POST /feedback`` one by one, in the JSON the ``langsmith`` client
sends there, with ``session_id`` filled from the project named by ``LANGSMITH_PROJECT``
(looked up once).

What LangSmith's ``trace_id`` is for an OTLP trace is not the record's ``trace_id``: LangSmith
calls ``trace_id`` the id of the trace's root run, which for an OTLP trace is derived from the
root *span's* id, unknown to a record about another span. So the body carries no ``trace_id``
(it is optional), and feedback on a whole trace, which LangSmith can only address through its
root run, is refused with that reason. A span that names its LangSmith ids itself
(``langsmith.span.id``, ``langsmith.trace.id``) is the exception: the record carries them
(``Feedback.run_attributes``) and they are used.

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
    "langsmith_ids_of",
    "langsmith_source_type",
]

_VENDOR: Final = "LangSmith"
# The source types LangSmith's API takes (its OpenAPI SourceType); the Python client's own
# enum holds only api and model.
_LANGSMITH_TYPES: Final = frozenset({"api", "model", "app", "auto_eval"})
_BY_KIND: Final = {"HUMAN": "app", "LLM": "model", "CODE": "api"}
ORIGINAL_SOURCE_TYPE: Final = "otel_feedback.source_type"
"""``feedback_source.metadata`` key holding a source type LangSmith does not take as given."""
WHOLE_TRACE_REFUSED: Final = (
    "LangSmith addresses a whole trace through its root run, whose id comes from the root "
    "span's id, which this trace-level record does not carry; record it on the root span"
)


def langsmith_source_type(source_type: str | None) -> str:
    """A source type LangSmith takes: its own four as given, others by kind (app/model/api)."""
    kind = (source_type or "api").lower()
    if kind in _LANGSMITH_TYPES:
        return kind
    return _BY_KIND[annotator_kind(kind)]


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
    body["feedback_source"] = {
        "type": mapped,
        "metadata": metadata,
        **({"user_id": source["user_id"]} if source.get("user_id") is not None else {}),
    }
    if body.get("session_id") is None and session_id is not None:
        body["session_id"] = str(session_id)
    body["extend_trace_retention"] = True  # as the client sends it
    return {name: value for name, value in body.items() if value is not None}


def langsmith_ids_of(record: Feedback) -> tuple[UUID | None, UUID | None]:
    """The run and trace ids LangSmith gave the judged span.

    A span may name its LangSmith run and trace itself (``langsmith.span.id``,
    ``langsmith.trace.id``, UUIDs): those win. Otherwise the run is the record's ``run_id``
    (LangSmith's rule for OTLP spans) and the trace is unknown. Feedback on a whole trace has
    no run.
    """
    if record.run_id is None:
        return None, None
    run = record.run_attributes
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

    Outcomes: delivered on 2xx (and 409, the feedback id already there); sent again later
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
        return _verdict(reply)


def _verdict(reply: Reply) -> Step:
    if reply.ok or reply.status == 409:  # 409: this feedback id is there already
        return DELIVERED
    if reply.transient:
        return unavailable(reply)
    if reply.status == 404:  # the run is not ingested yet
        return Step(Verdict.RETRY, retry_after_s=reply.retry_after_s)
    return refusal(_VENDOR, reply, credentials=env.LANGSMITH_API_KEY)
