"""MLflowFeedbackExporter: each record becomes an MLflow assessment on the trace and span.

MLflow 3 names a trace it ingested over OTLP ``tr-<32 hex>`` and its spans by their 16 hex
ids, and keeps feedback as assessments (``POST /api/3.0/mlflow/traces/{trace}/assessments``,
what ``mlflow.log_feedback`` sends). A record becomes a *feedback* assessment, and its
``correction`` a second, *expectation* assessment. Both take ids made from the feedback id,
so a record sent again is found instead of added twice.

Values keep their JSON types where MLflow's model allows: an expectation that is an object
or a list goes as ``serialized_value`` JSON, as MLflow's own client sends it
(``mlflow/entities/assessment.py``, ``ExpectationValue.to_proto``), so ``{"y": 3}`` reads
back with ``3``, not ``3.0``. A feedback value has no such form in MLflow (its ``Feedback``
message holds a ``google.protobuf.Value``, whose numbers are doubles, and its client sends
it so): numbers in it read back as floats, and the exact value is also kept as JSON in the
assessment's metadata under ``feedback_value``.

Plain HTTP (``requests``): MLflow's client is a large install and needs none of it here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from otel_feedback import _environment as env
from otel_feedback._export._http import (
    DELIVERED,
    JsonHttp,
    PerRecordExporter,
    Reply,
    Step,
    Verdict,
    refusal,
    unavailable,
)
from otel_feedback._kinds import annotator_kind
from otel_feedback._model import Feedback, FeedbackSource

__all__ = ["FEEDBACK_VALUE", "MLflowFeedbackExporter", "assessments_of", "mlflow_trace_id"]

_VENDOR: Final = "MLflow"
_SOURCE_TYPES: Final = {"HUMAN": "HUMAN", "LLM": "LLM_JUDGE", "CODE": "CODE"}
_CREDENTIALS: Final = f"{env.MLFLOW_TRACKING_TOKEN} or {env.MLFLOW_TRACKING_USERNAME}"
FEEDBACK_ID: Final = "feedback_id"
"""Assessment metadata key holding the record's feedback id."""
FEEDBACK_VALUE: Final = "feedback_value"
"""Assessment metadata key holding the feedback's value as exact JSON (MLflow reads floats)."""
_JSON_FORMAT: Final = "JSON_FORMAT"  # MLflow's _JSON_SERIALIZATION_FORMAT
# Record fields an assessment carries itself; the others go to its metadata.
_IN_ASSESSMENT: Final = frozenset(
    {"id", "key", "score", "comment", "correction", "trace_id", "run_id", "error"}
    | {"created_at", "modified_at"}
)


NO_TRACE: Final = "an MLflow assessment belongs to a trace: this record names none"


def mlflow_trace_id(trace_id: UUID) -> str:
    """MLflow's id of a trace: ``tr-`` and the OpenTelemetry trace id in 32 hex."""
    return f"tr-{trace_id.hex}"


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _metadata(record: Feedback, value: Any) -> dict[str, str]:
    # MLflow's assessment metadata maps strings to strings: other values go as JSON text.
    exclude = set(_IN_ASSESSMENT)
    if record.score is None:
        exclude.add("value")  # the value is the feedback's value
    data = record.model_dump(mode="json", exclude=exclude)
    metadata = {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in data.items()
        if value is not None
    }
    metadata[FEEDBACK_ID] = str(record.id)
    if value is not None:
        metadata[FEEDBACK_VALUE] = json.dumps(value, ensure_ascii=False)
    return metadata


def _expectation(value: Any) -> dict[str, Any]:
    """An expectation as MLflow's client sends it: objects and lists as JSON text."""
    if isinstance(value, bool | int | float | str):
        return {"value": value}
    return {
        "serialized_value": {
            "serialization_format": _JSON_FORMAT,
            "value": json.dumps(value, ensure_ascii=False),
        }
    }


def _source_id(source: FeedbackSource | None, kind: str) -> str:
    """Who gave it: the user, else the evaluator that judged (its name), else the kind."""
    if source is not None and source.user_id:
        return str(source.user_id)
    evaluator = (source.metadata or {}).get("evaluator") if source is not None else None
    return evaluator if isinstance(evaluator, str) and evaluator else kind.lower()


def assessments_of(record: Feedback, trace_id: UUID) -> list[dict[str, Any]]:
    """The assessments of one record: its feedback, then its correction as an expectation."""
    source = record.feedback_source
    kind = _SOURCE_TYPES[annotator_kind(source.type if source else None)]
    common: dict[str, Any] = {
        "assessment_name": record.key,
        "trace_id": mlflow_trace_id(trace_id),
        "source": {
            "source_type": kind,
            "source_id": _source_id(source, kind),
        },
        "create_time": _time(record.created_at),
        "last_update_time": _time(record.modified_at),
    }
    if record.run_id is not None:
        common["span_id"] = f"{record.run_id.int:016x}"
    value = record.score if record.score is not None else record.value
    feedback: dict[str, Any] = {"value": value}
    if record.error:
        feedback["error"] = {
            "error_code": "EVALUATION_ERROR",
            "error_message": record.comment or "the evaluation errored",
        }
    assessments = [
        {
            **common,
            "metadata": _metadata(record, value),
            "assessment_id": f"a-{record.id.hex}",
            "feedback": feedback,
            **({"rationale": record.comment} if record.comment is not None else {}),
        }
    ]
    if record.correction is not None:
        assessments.append(
            {
                **common,
                "metadata": _metadata(record, None),
                "assessment_id": f"a-{record.id.hex}-correction",
                "expectation": _expectation(record.correction),
            }
        )
    return assessments


class MLflowFeedbackExporter(PerRecordExporter):
    """Writes each record as MLflow assessments on the trace and span it judges.

    The feedback assessment: name = key; value = score, else value (numbers read back as
    floats, MLflow's model of a feedback value; the exact JSON is in metadata under
    ``feedback_value``); rationale = comment; ``error`` when the evaluation errored; source
    HUMAN for people (``app``, ``human``, ``user``, ...), LLM_JUDGE for ``model``/``llm``/
    ``judge``, CODE otherwise, with the user id (else the kind) as source id; ``span_id`` =
    the judged span (none for feedback on a whole trace); metadata = the feedback id under
    ``feedback_id`` and the rest of the record, as strings. A ``correction`` becomes an
    expectation assessment of the same name: an object as ``serialized_value`` JSON, as
    MLflow's client sends it, so its numbers keep their types. Assessment ids come from the
    feedback id (``a-<32 hex>``), so a record sent twice is recognised, not duplicated.

    Outcomes: delivered when MLflow stored it (or holds it already); sent again later when
    MLflow is down, slow, busy (429, 5xx, an answer cut off mid-body; after the
    ``Retry-After`` it sends, when it sends one), or has not ingested the trace yet (404);
    refused with the reason on other answers, and at once for the whole batch when
    credentials are refused.

    Example::

        FeedbackSpanProcessor(MLflowFeedbackExporter(tracking_uri="http://localhost:5000"))

    Args:
        tracking_uri: the MLflow server; default ``MLFLOW_TRACKING_URI``, else
            ``http://localhost:5000``. Only ``http://`` and ``https://`` servers.
        token: a bearer token; default ``MLFLOW_TRACKING_TOKEN``. Never logged.
        basic_auth: ``(user, password)``; default ``MLFLOW_TRACKING_USERNAME`` and
            ``MLFLOW_TRACKING_PASSWORD``. Never logged.
        timeout: seconds per HTTP request.

    Raises:
        ValueError: a tracking URI that is not an HTTP server, or a non-positive timeout.
    """

    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        uri = tracking_uri or env.mlflow_tracking_uri()
        env_token, env_basic = env.mlflow_credentials()
        token = token if token is not None else env_token
        basic_auth = basic_auth if basic_auth is not None else env_basic
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = JsonHttp(
            uri,
            vendor=_VENDOR,
            headers=headers,
            timeout=timeout,
            basic_auth=None if token else basic_auth,
            setting=f"tracking_uri (or {env.MLFLOW_TRACKING_URI})",
        )

    def __repr__(self) -> str:
        return f"MLflowFeedbackExporter(tracking_uri={self._http.base_url!r})"

    def _send(self, record: Feedback) -> Step:
        if record.trace_id is None:
            return Step(Verdict.REFUSED, NO_TRACE)
        for assessment in assessments_of(record, record.trace_id):
            step = self._create(assessment)
            if step.verdict is not Verdict.DELIVERED:
                return step
        return DELIVERED

    def _create(self, assessment: dict[str, Any]) -> Step:
        trace = assessment["trace_id"]
        reply = self._http.request(
            "POST",
            f"/api/3.0/mlflow/traces/{trace}/assessments",
            body={"assessment": assessment},
        )
        if reply.ok:
            return DELIVERED
        if reply.status >= 500 and self._holds(trace, assessment["assessment_id"]):
            # Sent before (a retry after a lost answer): MLflow refuses the same id again
            # with a constraint violation (HTTP 500).
            return DELIVERED
        return _verdict(reply)

    def _holds(self, trace: str, assessment_id: str) -> bool:
        reply = self._http.request(
            "GET", f"/api/3.0/mlflow/traces/{trace}/assessments/{assessment_id}"
        )
        return reply.ok


def _verdict(reply: Reply) -> Step:
    if reply.transient:
        return unavailable(reply)
    if reply.status == 404:  # MLflow has not ingested the trace yet
        return Step(Verdict.RETRY, retry_after_s=reply.retry_after_s)
    return refusal(_VENDOR, reply, credentials=_CREDENTIALS)
