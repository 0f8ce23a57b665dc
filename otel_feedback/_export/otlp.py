"""OTLPFeedbackExporter: one OTLP log event per feedback record, via the SDK's log exporters."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from otel_feedback._attributes import EVENT_NAME
from otel_feedback._codec import encode
from otel_feedback._environment import (
    OTEL_PYTHON_FEEDBACK_EXPORTER,
    PROTOCOL_GRPC,
    PROTOCOLS,
    otlp_http_credential_provider_set,
    otlp_logs_protocol,
)
from otel_feedback._export.base import (
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
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
    sending, retries and encoding are the SDK's.

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
        self._status = _LastStatus()
        if log_exporter is None:
            log_exporter = _sdk_log_exporter(protocol, exporter_options, self._status)
        self._exporter = log_exporter
        self._resource = _OnceHashedResource(resource) if resource is not None else None

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send ``batch`` as one OTLP logs request.

        The SDK exporter retries transient errors within its timeout. What still fails is
        ``RETRY`` unless the endpoint refused the batch for good (an HTTP 4xx other than
        408 and 429), which is ``FAILURE``; 404 and 405 mean the endpoint takes no OTLP logs
        at all, said once in the log. gRPC status codes are not visible through the SDK
        exporter: a gRPC failure is always ``RETRY``, bounded by the processor.
        """
        resource = self._resource
        if resource is None:
            resource = self._resource = _OnceHashedResource(_application_resource())
        self._status.code = None
        log_records = [to_log_record(record, resource) for record in batch]
        result = self._exporter.export(log_records)
        if result is LogRecordExportResult.SUCCESS:
            return FeedbackExportResult.SUCCESS
        code = self._status.code
        if code is None:
            # No answer: the endpoint is down, or the SDK could not encode the batch (it
            # says only "failure"). Encoding it here tells them apart; a record that cannot
            # be encoded raises, so that the engine finds it and sends the others.
            _encode_logs(log_records)
        if code in _NO_LOGS:
            # Phoenix, MLflow and other trace-only backends: retrying cannot help.
            reason = (
                f"the endpoint takes no OTLP logs (HTTP {code}); set "
                f"{OTEL_PYTHON_FEEDBACK_EXPORTER}=phoenix, mlflow or none for such a backend "
                "(the feedback is still on the spans as events)"
            )
            warn_once(f"otlp-no-logs:{code}", "OTLPFeedbackExporter: %s", reason)
            return PartialFeedbackExport(refused=[(record, reason) for record in batch])
        if code == 413 and len(batch) > 1:
            # Too large for the endpoint: the engine tries each half in turn.
            raise BatchTooLargeError(f"the endpoint refused a batch of {len(batch)} (HTTP 413)")
        if code is not None and 400 <= code < 500 and code not in (408, 429):
            reason = f"the endpoint answered HTTP {code}"
            return PartialFeedbackExport(refused=[(record, reason) for record in batch])
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


class BatchTooLargeError(Exception):
    """The endpoint refused a batch as too large (HTTP 413): smaller ones may pass."""


def to_log_record(record: Feedback, resource: Resource) -> ReadableLogRecord:
    """The OTLP log event of one record."""
    timestamp = ns_from_datetime(record.created_at)
    if not 0 <= timestamp < _MAX_FIXED64:
        # OTLP's time is a fixed64: such a record cannot be encoded, and would sink its batch.
        raise ValueError(f"created_at: {record.created_at} does not fit an OTLP timestamp")
    log_record = LogRecord(
        timestamp=timestamp,
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


def _application_resource() -> Resource:
    provider_resource = getattr(trace.get_tracer_provider(), "resource", None)
    if isinstance(provider_resource, Resource):
        return provider_resource
    return Resource.create()


class _LastStatus(threading.local):
    """The HTTP status of the exporter's last response on this thread, if any."""

    code: int | None = None

    def hook(self, response: Any, *_args: Any, **_kwargs: Any) -> None:
        self.code = int(response.status_code)


def _sdk_log_exporter(
    protocol: str | None, options: dict[str, Any], status: _LastStatus
) -> LogRecordExporter:
    # Imported on demand: each protocol's stack (requests, grpc) is heavy and often unused.
    if (protocol or otlp_logs_protocol()) == PROTOCOL_GRPC:
        try:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (  # noqa: PLC0415
                OTLPLogExporter as GrpcLogExporter,
            )
        except ImportError:
            raise ImportError(GRPC_EXTRA_MISSING) from None
        return GrpcLogExporter(**options)
    import requests  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
        OTLPLogExporter as HttpLogExporter,
    )

    if "session" not in options and not otlp_http_credential_provider_set():
        # The SDK exporter reports only success or failure; its session tells us the status,
        # which separates an endpoint that is down from one that refuses the batch for good.
        session = requests.Session()
        session.hooks["response"].append(status.hook)
        options = {**options, "session": session}
    return HttpLogExporter(**options)
