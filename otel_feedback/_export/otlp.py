"""OTLPFeedbackExporter: one OTLP log event per feedback record, via the SDK's log exporters."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import requests
from opentelemetry import trace
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from otel_feedback._attributes import EVENT_NAME
from otel_feedback._codec import encode, evaluation_body
from otel_feedback._environment import (
    OTEL_PYTHON_FEEDBACK_EXPORTER,
    PROTOCOL_GRPC,
    PROTOCOLS,
    otlp_http_credential_provider_set,
    otlp_logs_protocol,
)
from otel_feedback._export._http import (
    ANSWER_BODY_LIMIT,
    CUT_OFF,
    ERROR_BODY_LIMIT,
    BatchRefusedError,
    read_body,
    retry_after_of,
    transient_status,
)
from otel_feedback._export.base import (
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
    RetryLater,
)
from otel_feedback._ids import ns_from_datetime
from otel_feedback._log import warn_once
from otel_feedback._model import Feedback
from otel_feedback._version import __version__

__all__ = ["GRPC_EXTRA_MISSING", "OTLPFeedbackExporter", "to_log_record"]

GRPC_EXTRA_MISSING = (
    "OTLP over gRPC needs the grpc extra: pip install 'otel-feedback[grpc]' "
    "(or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
)

_SCOPE = InstrumentationScope("otel_feedback", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NO_LOGS = (404, 405)
_MAX_FIXED64 = 2**64


class OTLPFeedbackExporter(FeedbackExporter):
    """Sends each record as an OTLP log event correlated with the span it judges.

    Each record becomes one LogRecord: ``event_name`` ``gen_ai.evaluation.result``, the
    evaluated span's trace id and span id, ``timestamp`` = ``created_at``, the record's
    fields as the same attributes as its span event, and the application's resource. Any
    backend or Collector that takes OTLP logs shows it next to its trace.

    With no arguments it is configured exactly like the SDK's own OTLP log exporter, from
    ``OTEL_EXPORTER_OTLP_[LOGS_]{PROTOCOL,ENDPOINT,HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE}``;
    sending and encoding are the SDK's. Over HTTP, every answer ends the export: an
    endpoint that is busy or failing makes one request per export, whose outcome says when
    to come back (its ``Retry-After``), and the processor owns the waiting; the SDK still
    retries a connection that fails within its timeout. Over gRPC the SDK exporter retries
    within its timeout (honouring the server's ``RetryInfo`` when it fits in it).

    Example::

        FeedbackSpanProcessor(OTLPFeedbackExporter())                  # from the environment
        OTLPFeedbackExporter(protocol="grpc", endpoint="localhost:4317")

    Args:
        protocol: ``"http/protobuf"`` or ``"grpc"``; default from the environment.
        resource: the resource the records carry; default the global TracerProvider's
            (which the SDK builds from ``OTEL_SERVICE_NAME`` and
            ``OTEL_RESOURCE_ATTRIBUTES``), else one built from the environment.
        log_exporter: an SDK ``LogRecordExporter`` to send through instead of building one.
        **exporter_options: passed to the SDK's ``OTLPLogExporter`` (``endpoint``,
            ``headers``, ``timeout``, ``compression``, ...).
    """

    def __init__(
        self,
        *,
        protocol: str | None = None,
        resource: Resource | None = None,
        log_exporter: LogRecordExporter | None = None,
        **exporter_options: Any,
    ) -> None:
        if log_exporter is not None and (protocol is not None or exporter_options):
            raise ValueError("log_exporter: cannot be combined with protocol or exporter options")
        if protocol is not None and protocol not in PROTOCOLS:
            raise ValueError(f"protocol: must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self._answer = _LastAnswer()
        if log_exporter is None:
            log_exporter = _sdk_log_exporter(protocol, exporter_options, self._answer)
        self._exporter = log_exporter
        self._resource = _OnceHashedResource(resource) if resource is not None else None
        # Built now, not at the first export: Resource.create() runs its detectors on a
        # thread pool, which refuses work once the interpreter is shutting down, when a
        # short script's first export may well happen (at exit).
        self._fallback = Resource.create() if resource is None else None

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send ``batch`` as one OTLP logs request.

        Over HTTP: ``RETRY`` when the endpoint is down, busy or failing (no answer, 408,
        429, 5xx, or an answer cut off mid-body), :class:`RetryLater` when it also said when
        to come back (``Retry-After``); refused for good on another 4xx, with the status as
        the reason; 404 and 405 mean the endpoint takes no OTLP logs at all, said once in
        the log. gRPC status codes are not visible through the SDK exporter: a gRPC failure
        is always ``RETRY``, bounded by the processor.

        Raises:
            BatchRefusedError: HTTP 413 for a batch of several records; the processor sends
                each half in turn.
        """
        resource = self._resource
        if resource is None:
            # The global provider's, when one was set after this exporter was built.
            resource = self._resource = _OnceHashedResource(
                _provider_resource() or self._fallback or Resource.get_empty()
            )
        answer = self._answer
        answer.forget()
        log_records = [to_log_record(record, resource) for record in batch]
        try:
            result = self._exporter.export(log_records)
        except _AnsweredError:
            # Older SDKs let the hook's error through rather than read it as a failed try.
            result = LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS and not answer.cut_off:
            return FeedbackExportResult.SUCCESS
        code = answer.code
        if code is None:
            # No answer: the endpoint is down, or the SDK could not encode the batch (it
            # says only "failure"). Encoding it here tells them apart; a record that cannot
            # be encoded raises, so that the engine finds it and sends the others.
            _encode_logs(log_records)
        elif answer.cut_off or transient_status(code) or code < 400:
            pass  # busy, failing, or cut off mid-body (no verdict at all): sent again later
        elif code in _NO_LOGS:
            # Phoenix, MLflow and other trace-only backends: retrying cannot help.
            reason = (
                f"the endpoint takes no OTLP logs (HTTP {code}); set "
                f"{OTEL_PYTHON_FEEDBACK_EXPORTER}=phoenix, mlflow or none for such a backend "
                "(the feedback is still on the spans as events)"
            )
            warn_once(f"otlp-no-logs:{code}", "OTLPFeedbackExporter: %s", reason)
            return PartialFeedbackExport(refused=[(record, reason) for record in batch])
        elif code == 413 and len(batch) > 1:
            raise BatchRefusedError(f"the endpoint refused a batch of {len(batch)} (HTTP 413)")
        else:
            reason = f"the endpoint answered HTTP {code}"
            return PartialFeedbackExport(refused=[(record, reason) for record in batch])
        if answer.retry_after_s is not None:
            return RetryLater(after_s=answer.retry_after_s)
        return FeedbackExportResult.RETRY

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the underlying SDK exporter."""
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Shut the underlying SDK exporter down."""
        self._exporter.shutdown()  # type: ignore[no-untyped-call]


def _encode_logs(log_records: Sequence[ReadableLogRecord]) -> None:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import (  # noqa: PLC0415
        encode_logs,
    )

    encode_logs(log_records).SerializeToString()


def to_log_record(record: Feedback, resource: Resource) -> ReadableLogRecord:
    """The OTLP log event of one record.

    Its attributes are the span event's, with the judged span's run attributes (its
    ``gen_ai.response.id`` and evaluation target, ``gen_ai.evaluation.target``); its body a
    one-line summary, ``evaluation: correctness=1``. Both as pydantic-evals writes its
    ``gen_ai.evaluation.result`` events, which Logfire's live evaluations group by target.
    """
    timestamp = ns_from_datetime(record.created_at)
    if not 0 <= timestamp < _MAX_FIXED64:
        # OTLP's time is a fixed64: such a record cannot be encoded, and would sink its batch.
        raise ValueError(f"created_at: {record.created_at} does not fit an OTLP timestamp")
    log_record = LogRecord(
        timestamp=timestamp,
        body=evaluation_body(record),
        attributes=encode(record),
        event_name=EVENT_NAME,
    )
    # The judged span's ids, set directly: a context holding a span for each record would
    # cost more than the rest of the conversion.
    log_record.trace_id = record.trace_id.int if record.trace_id is not None else 0
    log_record.span_id = record.run_id.int if record.run_id is not None else 0
    log_record.trace_flags = _SAMPLED
    return ReadableLogRecord(log_record=log_record, resource=resource, instrumentation_scope=_SCOPE)


class _OnceHashedResource(Resource):
    """A resource that computes its hash once.

    The SDK's log encoder groups records by resource, hashing each record's: a JSON dump of
    the attributes every time, a fifth of the encoding's cost. Resources are immutable.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def _provider_resource() -> Resource | None:
    provider_resource = getattr(trace.get_tracer_provider(), "resource", None)
    return provider_resource if isinstance(provider_resource, Resource) else None


class _LastAnswer(threading.local):
    """How the SDK exporter's last request on this thread was answered, if it was.

    Its ``hook`` is a response hook of the SDK exporter's ``requests`` session: it sees every
    answer before the SDK reads the body.
    """

    code: int | None = None
    retry_after_s: float | None = None
    cut_off: bool = False

    def forget(self) -> None:
        self.code, self.retry_after_s, self.cut_off = None, None, False

    def hook(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        self.code = code = int(response.status_code)
        self.retry_after_s = retry_after_of(response.headers.get("Retry-After"))
        # The body is read here, up to a bound: the SDK would read all of it.
        try:
            body = read_body(response, ANSWER_BODY_LIMIT if code < 400 else ERROR_BODY_LIMIT)
        except CUT_OFF as error:
            self.cut_off = True
            raise _AnsweredError(f"HTTP {code} cut off mid-body ({type(error).__name__})") from None
        if code >= 400:
            # Ends the SDK's export at once (it retries only on its connection errors):
            # otherwise it would sleep and ask again inside this one export (1, 2, 4 s, or a
            # Retry-After that fits its timeout), while the processor owns the waiting.
            raise _AnsweredError(f"HTTP {code}")
        response._content = body  # noqa: SLF001 - requests' own body attribute, read already


class _AnsweredError(Exception):
    """The endpoint answered with an error: not a connection error the SDK retries."""


def _sdk_log_exporter(
    protocol: str | None, options: dict[str, Any], answer: _LastAnswer
) -> LogRecordExporter:
    # Imported on demand: each protocol's stack is heavy and often unused.
    if (protocol or otlp_logs_protocol()) == PROTOCOL_GRPC:
        try:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (  # noqa: PLC0415
                OTLPLogExporter as GrpcLogExporter,
            )
        except ImportError:
            raise ImportError(GRPC_EXTRA_MISSING) from None
        return GrpcLogExporter(**options)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
        OTLPLogExporter as HttpLogExporter,
    )

    if "session" not in options and not otlp_http_credential_provider_set():
        # The SDK exporter reports only success or failure; its session tells us the answer,
        # which separates an endpoint that is down from one that refuses the batch for good,
        # and says when to come back.
        session = requests.Session()
        session.hooks["response"].append(answer.hook)
        options = {**options, "session": session}
    return HttpLogExporter(**options)
