"""A real OTLP receiver for the tests: HTTP (protobuf, gzip) and gRPC, on 127.0.0.1.

It decodes what exporters send with opentelemetry-proto and keeps it for assertions.
"""

from __future__ import annotations

import gzip
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_feedback import Feedback
from otel_feedback._decode import decode


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for a server that comes up later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP AnyValue, keeping bool, int and double apart."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


@dataclass(frozen=True)
class ReceivedLog:
    resource: dict[str, Any]
    scope: str
    record: LogRecord
    transport: str

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.record.attributes)

    @property
    def trace_id(self) -> int:
        return int.from_bytes(self.record.trace_id, "big")

    @property
    def span_id(self) -> int:
        return int.from_bytes(self.record.span_id, "big")

    @property
    def feedback(self) -> Feedback:
        """The feedback record this log event carries, rebuilt from what crossed the wire."""
        return decode(
            self.attributes,
            timestamp_ns=self.record.time_unix_nano,
            trace_id=self.trace_id,
            span_id=self.span_id,
        )


@dataclass(frozen=True)
class ReceivedSpan:
    resource: dict[str, Any]
    span: Span
    transport: str

    @property
    def trace_id(self) -> int:
        return int.from_bytes(self.span.trace_id, "big")

    @property
    def span_id(self) -> int:
        return int.from_bytes(self.span.span_id, "big")

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)

    @property
    def parent_span_id(self) -> int:
        return int.from_bytes(self.span.parent_span_id, "big") if self.span.parent_span_id else 0


class OTLPReceiver:
    """Collects OTLP logs and traces sent over HTTP or gRPC to 127.0.0.1 (ephemeral ports)."""

    def __init__(
        self, *, http_port: int = 0, on_logs: Callable[[list[ReceivedLog]], None] | None = None
    ) -> None:
        self._on_logs = on_logs  # called before the request is answered
        self._lock = threading.Lock()
        self._logs: list[ReceivedLog] = []
        self._spans: list[ReceivedSpan] = []
        self.requests = 0
        # Faults, for the reliability tests: statuses to answer with in turn (None: accept),
        # a Retry-After header, and a gate that holds every request while it is closed.
        self.faults: list[int | None] = []
        self.retry_after: str | None = None
        self.refused = 0
        self.gate = threading.Event()
        self.gate.set()
        self.delay_s = 0.0
        self._http = _QuietServer(("127.0.0.1", http_port), _handler(self))
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _GrpcLogs(self), self._grpc
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _GrpcTraces(self), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")

    @property
    def http_port(self) -> int:
        return int(self._http.server_address[1])

    def next_fault(self) -> int | None:
        """The status to answer this request with, or None to accept it; faults cycle."""
        with self._lock:
            if not self.faults:
                return None
            status = self.faults.pop(0)
            self.faults.append(status)
            if status is not None:
                self.refused += 1
            return status

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> OTLPReceiver:
        self._http_thread.start()
        self._grpc.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None)

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what arrived ---------------------------------------------------------------------
    def logs(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self._logs)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._logs.clear()
            self._spans.clear()

    def take_logs(self, request: logs_service_pb2.ExportLogsServiceRequest, transport: str) -> None:
        received = [
            ReceivedLog(attributes(rl.resource.attributes), sl.scope.name, record, transport)
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]
        if self._on_logs is not None:
            self._on_logs(received)
        with self._lock:
            self.requests += 1
            self._logs.extend(received)

    def take_spans(
        self, request: trace_service_pb2.ExportTraceServiceRequest, transport: str
    ) -> None:
        received = [
            ReceivedSpan(attributes(rs.resource.attributes), span, transport)
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        with self._lock:
            self.requests += 1
            self._spans.extend(received)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (an exporter's timeout in the fault tests) is expected.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)


def _handler(receiver: OTLPReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.gate.wait(60)
            if receiver.delay_s:
                time.sleep(receiver.delay_s)  # a slow endpoint, on the server's own thread
            status = receiver.next_fault()
            if status is not None:
                self.send_response(status)
                if receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if self.path == "/v1/logs":
                logs = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                receiver.take_logs(logs, "http")
                reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
            elif self.path == "/v1/traces":
                traces = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                receiver.take_spans(traces, "http")
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _GrpcLogs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self._receiver.take_logs(request, "grpc")
        return logs_service_pb2.ExportLogsServiceResponse()


class _GrpcTraces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver.take_spans(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()
