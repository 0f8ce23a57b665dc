"""Probes of the endpoints feedback goes to: what answers there, and what to change.

Each probe sends what an exporter would send, with nothing in it: an empty OTLP export
request (valid protobuf, no records) or a read of Phoenix's REST API. Headers and keys are
sent as configured, so that a refused credential shows, and never printed.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_BODY_BYTES",
    "Answer",
    "Finding",
    "http_request",
    "probe_jsonl",
    "probe_otlp_grpc",
    "probe_otlp_http",
    "probe_phoenix",
    "probe_writable",
]

_PROTOBUF: Final = {"Content-Type": "application/x-protobuf"}
# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with its own
# SETTINGS frame, an HTTP/1.1 server with text.
_H2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS_FRAME_TYPE: Final = 0x04
_NO_LOGS_ADVICE: Final = (
    "Phoenix and MLflow take OTLP traces but no logs: set OTEL_PYTHON_FEEDBACK_EXPORTER=phoenix "
    "(Phoenix annotations), or =none (MLflow: feedback stays on the span events), or point "
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT at a receiver that takes logs"
)


@dataclass(frozen=True)
class Finding:
    """What a probe found; ``ok`` False means feedback sent there would be lost."""

    ok: bool
    what: str
    advice: str = ""


@dataclass(frozen=True)
class Answer:
    """What an HTTP endpoint answered: a status and the start of the body, or why none."""

    status: int | None = None
    error: str | None = None
    wrong_protocol: str | None = None
    body: bytes = b""


MAX_BODY_BYTES: Final = 64 * 1024
"""The most of an answer's body a probe reads: what it needs is in the status line and the
first bytes, and an endpoint may answer with anything, of any size."""


def _split(url: str) -> tuple[str, str, int, str]:
    parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    scheme = parsed.scheme.lower()
    port = parsed.port or (443 if scheme == "https" else 80)
    return scheme, parsed.hostname or "localhost", port, parsed.path or "/"


def _speaks(host: str, port: int, timeout: float) -> str | None:
    """``"http/2"`` or ``"http/1"`` for what answers the HTTP/2 preface; ``None``: no answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_H2_PREFACE)
            reply = sock.recv(16)
    except OSError:
        return None
    if not reply:
        return None
    if len(reply) >= 4 and reply[3] == _SETTINGS_FRAME_TYPE:
        return "http/2"
    return "http/1"


def http_request(
    url: str,
    headers: dict[str, str],
    timeout: float,
    method: str = "POST",
    basic_auth: tuple[str, str] | None = None,
) -> Answer:
    """One request, as an exporter would send it; the answer's body read up to a bound.

    ``timeout`` bounds each socket operation; an endpoint that trickles bytes can still
    hold a probe longer, which is why ``doctor`` waits for its probes until its deadline.
    """
    scheme, host, port, path = _split(url)
    query = urllib.parse.urlsplit(url).query
    target = f"{path}?{query}" if query else path
    if basic_auth is not None:
        pair = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        headers = {**headers, "Authorization": f"Basic {pair}"}
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, target, body=b"" if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        return Answer(status=response.status, body=response.read(MAX_BODY_BYTES))
    except ConnectionRefusedError:
        return Answer(error=f"nothing listens on {host}:{port} (connection refused)")
    except TimeoutError:
        return Answer(error=f"{host}:{port} did not answer within {timeout:.1f} s")
    except socket.gaierror as error:
        return Answer(error=f"cannot resolve {host!r}: {error.strerror}")
    except ssl.SSLError as error:
        if _speaks(host, port, timeout) == "http/1":
            return Answer(wrong_protocol="plain HTTP, not HTTPS")
        return Answer(error=f"TLS failed: {error.reason or error}")
    except (http.client.HTTPException, ConnectionError) as error:
        if _speaks(host, port, timeout) == "http/2":
            return Answer(wrong_protocol="gRPC (HTTP/2)")
        return Answer(error=f"no HTTP answer: {type(error).__name__}")
    except OSError as error:
        return Answer(error=f"cannot connect to {host}:{port}: {error.strerror or error}")
    finally:
        connection.close()


def _sibling(url: str, old: str, new: str) -> str:
    scheme, host, port, path = _split(url)
    base = path.removesuffix(old).rstrip("/")
    # The query stays: it may carry the endpoint's key, as the exporter sends it.
    query = urllib.parse.urlsplit(url).query
    return f"{scheme}://{host}:{port}{base}{new}" + (f"?{query}" if query else "")


def probe_otlp_http(endpoint: str, headers: dict[str, str], timeout: float) -> Finding:
    """Probe the OTLP/HTTP logs endpoint the ``otlp`` exporter sends to."""
    answer = http_request(endpoint, {**_PROTOBUF, **headers}, timeout)
    if answer.wrong_protocol is not None:
        return Finding(
            False,
            f"{endpoint} speaks {answer.wrong_protocol}, not OTLP/HTTP",
            "set OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=grpc (with the [grpc] extra installed), "
            "or use the receiver's HTTP port (4318 by default)"
            if answer.wrong_protocol.startswith("gRPC")
            else "use an http:// endpoint",
        )
    if answer.status is None:
        return Finding(False, f"{endpoint} is unreachable: {answer.error}", _UNREACHABLE)
    status = answer.status
    if 200 <= status < 300:
        return Finding(True, f"{endpoint} takes OTLP logs (HTTP {status})")
    if status in (401, 403):
        return Finding(False, f"{endpoint} refused the credentials (HTTP {status})", _AUTH_HTTP)
    if status in (404, 405):
        traces = _sibling(endpoint, "/v1/logs", "/v1/traces")
        traced = http_request(traces, {**_PROTOBUF, **headers}, timeout).status
        if traced is not None and traced not in (404, 405) and traced < 500:
            return Finding(
                False,
                f"{endpoint} answers HTTP {status}, while {traces} takes traces "
                f"(HTTP {traced}): feedback sent as OTLP logs would be lost",
                _NO_LOGS_ADVICE,
            )
        return Finding(
            False,
            f"{endpoint} answers HTTP {status}: no OTLP receiver at this path",
            "check OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (it is used as it is, with its path) "
            "or OTEL_EXPORTER_OTLP_ENDPOINT (the base URL; /v1/logs is added)",
        )
    return Finding(False, f"{endpoint} answers HTTP {status} to an empty OTLP logs request")


_UNREACHABLE: Final = (
    "start the receiver, or set OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT to where it listens"
)
_AUTH_HTTP: Final = "check OTEL_EXPORTER_OTLP_LOGS_HEADERS / OTEL_EXPORTER_OTLP_HEADERS"


def probe_otlp_grpc(endpoint: str, headers: dict[str, str], timeout: float) -> Finding:
    """Probe the OTLP/gRPC endpoint the ``otlp`` exporter sends to."""
    scheme, host, port, _path = _split(endpoint)
    if scheme != "https":
        spoken = _speaks(host, port, timeout)
        if spoken is None:
            answer = http_request(f"http://{host}:{port}/", {}, timeout)
            error = answer.error or "no answer to an HTTP/2 greeting"
            return Finding(False, f"{endpoint} is unreachable: {error}", _UNREACHABLE)
        if spoken == "http/1":
            return Finding(
                False,
                f"{endpoint} speaks HTTP/1.1, not gRPC",
                "set OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/protobuf, or use the receiver's "
                "gRPC port (4317 by default)",
            )
    try:
        import grpc  # noqa: PLC0415 - only for gRPC endpoints, from the [grpc] extra
        from opentelemetry.proto.collector.logs.v1 import (  # noqa: PLC0415
            logs_service_pb2,
            logs_service_pb2_grpc,
        )
        from opentelemetry.proto.collector.trace.v1 import (  # noqa: PLC0415
            trace_service_pb2,
            trace_service_pb2_grpc,
        )
    except ImportError:
        return Finding(
            False,
            "the protocol is grpc but grpcio is not installed: the otlp exporter cannot send",
            "pip install 'otel-feedback[grpc]', or set OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="
            "http/protobuf",
        )
    target = f"{host}:{port}"
    if scheme == "https":
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
    else:
        channel = grpc.insecure_channel(target)
    metadata = [(k.lower(), v) for k, v in headers.items()]
    with channel:
        try:
            logs_service_pb2_grpc.LogsServiceStub(channel).Export(  # type: ignore[no-untyped-call]
                logs_service_pb2.ExportLogsServiceRequest(), timeout=timeout, metadata=metadata
            )
            return Finding(True, f"{endpoint} takes OTLP logs over gRPC")
        except grpc.RpcError as error:
            code = error.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return Finding(False, f"{endpoint} refused the credentials ({code.name})", _AUTH_HTTP)
        if code is grpc.StatusCode.UNIMPLEMENTED:
            try:
                trace_service_pb2_grpc.TraceServiceStub(channel).Export(  # type: ignore[no-untyped-call]
                    trace_service_pb2.ExportTraceServiceRequest(),
                    timeout=timeout,
                    metadata=metadata,
                )
                takes_traces = True
            except grpc.RpcError:
                takes_traces = False
            if takes_traces:
                return Finding(
                    False,
                    f"{endpoint} takes traces but has no logs service: feedback would be lost",
                    _NO_LOGS_ADVICE,
                )
        return Finding(False, f"{endpoint} answered the gRPC logs export with {code.name}")


def probe_phoenix(base: str, api_key: str | None, timeout: float) -> Finding:
    """Probe Phoenix's REST API, where the ``phoenix`` exporter posts annotations."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = base.rstrip("/") + "/v1/projects?limit=1"
    answer = http_request(url, headers, timeout, method="GET")
    if answer.status is None:
        what = answer.error or f"speaks {answer.wrong_protocol}"
        return Finding(
            False,
            f"Phoenix at {base} is unreachable: {what}",
            "start Phoenix, or set PHOENIX_COLLECTOR_ENDPOINT to its base URL",
        )
    if 200 <= answer.status < 300:
        return Finding(True, f"Phoenix at {base} answers its REST API (HTTP {answer.status})")
    if answer.status in (401, 403):
        return Finding(
            False,
            f"Phoenix at {base} refused the API key (HTTP {answer.status})",
            "set PHOENIX_API_KEY to a key of this Phoenix"
            if api_key
            else "this Phoenix needs an API key: set PHOENIX_API_KEY",
        )
    return Finding(
        False,
        f"{base} answers HTTP {answer.status} on /v1/projects: not Phoenix's REST API",
        "set PHOENIX_COLLECTOR_ENDPOINT to Phoenix's base URL (e.g. http://localhost:6006)",
    )


def probe_writable(path: str, what: str) -> Finding:
    """Whether the file at ``path`` can be created or appended to."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path):
        ok = os.access(path, os.W_OK)
    else:
        ok = os.path.isdir(folder) and os.access(folder, os.W_OK)
    if ok:
        return Finding(True, f"{what} {path} is writable")
    return Finding(
        False, f"{what} {path} cannot be written", f"create {folder} or pick another path"
    )


def probe_jsonl(path: str) -> Finding:
    """The ``jsonl`` exporter's file."""
    return probe_writable(path, "the jsonl file")
