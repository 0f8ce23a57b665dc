"""LangfuseFeedbackExporter: each record becomes a Langfuse score on the trace and observation.

Langfuse keeps an OTLP trace under its 32-hex trace id and each span as an observation under
its 16-hex span id. A record goes to ``POST /api/public/scores`` as one score whose id is the
feedback id, on which Langfuse upserts, so a record sent again updates its score.

Each score carries the environment Langfuse gives its trace: Langfuse's OTLP ingestion takes
a trace's environment from the resource's ``deployment.environment.name`` (else
``deployment.environment``), and a score sent without one lands in ``default``, apart from
its trace.

One score per request, the body form every Langfuse server takes; the newer list form answers
a partial failure with counts and messages that do not say which score failed. Plain HTTP
(``requests``) with basic auth: the ``langfuse`` client would bring its own thread, queue and
retries, which the engine already provides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource

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
from otel_feedback._export.base import ExportOutcome
from otel_feedback._model import Feedback

__all__ = ["LangfuseFeedbackExporter", "environment_of", "score_of"]

_VENDOR: Final = "Langfuse"
_CREDENTIALS: Final = f"{env.LANGFUSE_PUBLIC_KEY} and {env.LANGFUSE_SECRET_KEY}"
# Record fields the score carries itself; the others go to its metadata.
_IN_SCORE: Final = frozenset({"id", "key", "score", "comment", "trace_id", "run_id", "created_at"})
NO_TRACE: Final = "a Langfuse score belongs to a trace: this record names none"
# The resource attributes Langfuse's OTLP ingestion reads a trace's environment from, in order.
ENVIRONMENT_ATTRIBUTES: Final = ("deployment.environment.name", "deployment.environment")
# Langfuse's rule for an environment (its SDK checks it so; its API refuses others).
_ENVIRONMENT: Final = re.compile(r"(?!langfuse)[a-z0-9_-]+")
_MAX_ENVIRONMENT_CHARS: Final = 40
NO_VALUE: Final = (
    "a Langfuse score needs a number, a boolean or a category: this record has no score and "
    "no such value"
)


def _typed_value(record: Feedback) -> tuple[float | str, str] | None:
    """The score's value and Langfuse data type, or ``None`` when the record has neither."""
    for given in (record.score, record.value):
        if isinstance(given, bool):
            return float(given), "BOOLEAN"
        if isinstance(given, int | float):
            return float(given), "NUMERIC"
        if isinstance(given, str):
            return given, "CATEGORICAL"
        if given is not None:
            return None  # a JSON object: no score type holds it
    return None


def environment_of(resource: Resource) -> str | None:
    """The environment Langfuse gives a trace with this resource; ``None``: its ``default``."""
    for name in ENVIRONMENT_ATTRIBUTES:
        value = resource.attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def score_of(record: Feedback, environment: str | None = None) -> dict[str, Any] | None:
    """The score-create body of one record, or ``None`` when it has no value Langfuse takes."""
    typed = _typed_value(record)
    if typed is None or record.trace_id is None:
        return None
    value, data_type = typed
    exclude = set(_IN_SCORE)
    if record.score is None:
        exclude.add("value")  # the value is the score
    data = record.model_dump(mode="json", exclude=exclude)
    body: dict[str, Any] = {
        "id": str(record.id),
        "traceId": record.trace_id.hex,
        "name": record.key,
        "value": value,
        "dataType": data_type,
        "timestamp": record.created_at.isoformat().replace("+00:00", "Z"),
        "metadata": {name: item for name, item in data.items() if item is not None},
    }
    if record.run_id is not None:
        body["observationId"] = f"{record.run_id.int:016x}"
    if record.comment is not None:
        body["comment"] = record.comment
    if environment is not None:
        body["environment"] = environment
    return body


class LangfuseFeedbackExporter(PerRecordExporter):
    """Writes each record as a Langfuse score on the trace and observation it judges.

    id = the feedback id (Langfuse upserts on it); traceId = the trace id in 32 hex;
    observationId = the span id in 16 hex (none for feedback on a whole trace); name = key;
    value and data type: a bool score BOOLEAN (1 or 0), a number NUMERIC, and without a score
    a string value CATEGORICAL (a number or bool value as above); comment; timestamp =
    ``created_at``; metadata = the rest of the record; environment = the one Langfuse gives
    the trace (see ``environment``). A record with neither a score nor such a value (only a
    comment, or a JSON object) is refused with that reason.

    Outcomes: delivered on 2xx; sent again later when Langfuse is down, slow, busy (429,
    5xx, an answer cut off mid-body; after the ``Retry-After`` it sends, when it sends one)
    or answers 404; refused with the reason on other answers, and at once for the whole
    batch when the keys are refused.

    Example::

        FeedbackSpanProcessor(LangfuseFeedbackExporter())  # LANGFUSE_* from the environment

    Args:
        base_url: default ``LANGFUSE_BASE_URL``, else ``LANGFUSE_HOST``, else
            ``https://cloud.langfuse.com``.
        public_key: default ``LANGFUSE_PUBLIC_KEY``.
        secret_key: default ``LANGFUSE_SECRET_KEY``. Never logged.
        environment: the scores' Langfuse environment; default the one Langfuse's OTLP
            ingestion gives the traces: ``deployment.environment.name`` (else
            ``deployment.environment``) of ``resource``.
        resource: the application's resource; default the global TracerProvider's (read at
            the first export, so a provider set later counts), else the one the environment
            describes (``OTEL_RESOURCE_ATTRIBUTES``). Neither attribute: no environment sent,
            Langfuse's ``default``, as for the traces.
        timeout: seconds per HTTP request.

    Raises:
        ValueError: a missing key, a URL that is not HTTP, a non-positive timeout, or an
            ``environment`` Langfuse does not take (lowercase letters, digits, ``-`` and
            ``_``, at most 40, not starting with ``langfuse``).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        public_key: str | None = None,
        secret_key: str | None = None,
        environment: str | None = None,
        resource: Resource | None = None,
        timeout: float = 10.0,
    ) -> None:
        env_public, env_secret = env.langfuse_keys()
        public_key = public_key if public_key is not None else env_public
        secret_key = secret_key if secret_key is not None else env_secret
        if not public_key:
            raise ValueError(f"public_key: missing; pass it or set {env.LANGFUSE_PUBLIC_KEY}")
        if not secret_key:
            raise ValueError(f"secret_key: missing; pass it or set {env.LANGFUSE_SECRET_KEY}")
        self._http = JsonHttp(
            base_url or env.langfuse_base_url(),
            vendor=_VENDOR,
            headers={},
            timeout=timeout,
            basic_auth=(public_key, secret_key),
            setting=f"base_url (or {env.LANGFUSE_BASE_URL} / {env.LANGFUSE_HOST})",
        )
        if environment is not None:
            _check_environment(environment)
            self._environment: str | None = environment
            self._resolved = True
        else:
            self._environment = None if resource is None else environment_of(resource)
            self._resolved = resource is not None
        # Built now, not at the first export: Resource.create() runs its detectors on a
        # thread pool, which refuses work once the interpreter is shutting down.
        self._fallback = None if self._resolved else Resource.create()

    def __repr__(self) -> str:
        return f"LangfuseFeedbackExporter(base_url={self._http.base_url!r})"

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send each record as a score; see the class for the outcomes."""
        if not self._resolved:
            # The global provider's resource, when one was set after this exporter was built.
            provider_resource = getattr(trace.get_tracer_provider(), "resource", None)
            resource = provider_resource if isinstance(provider_resource, Resource) else None
            resource = resource or self._fallback or Resource.get_empty()
            self._environment, self._resolved = environment_of(resource), True
        return super().export(batch)

    def _send(self, record: Feedback) -> Step:
        if record.trace_id is None:
            return Step(Verdict.REFUSED, NO_TRACE)
        body = score_of(record, self._environment)
        if body is None:
            return Step(Verdict.REFUSED, NO_VALUE)
        return _verdict(self._http.request("POST", "/api/public/scores", body=body))


def _check_environment(environment: object) -> None:
    if (
        not isinstance(environment, str)
        or len(environment) > _MAX_ENVIRONMENT_CHARS
        or not _ENVIRONMENT.fullmatch(environment)
    ):
        raise ValueError(
            f"environment: Langfuse takes lowercase letters, digits, '-' and '_' (at most "
            f"{_MAX_ENVIRONMENT_CHARS}, not starting with 'langfuse'), got {environment!r}"
        )


def _verdict(reply: Reply) -> Step:
    if reply.ok:
        return DELIVERED
    if reply.transient:
        return unavailable(reply)
    if reply.status == 404:
        return Step(Verdict.RETRY, retry_after_s=reply.retry_after_s)
    return refusal(_VENDOR, reply, credentials=_CREDENTIALS)
