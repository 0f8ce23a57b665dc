"""The endpoint as a WSGI application: Flask, Django, gunicorn, waitress."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from otel_feedback.web._core import Answer, Endpoint

__all__ = ["WSGIApp"]

StartResponse = Callable[..., Any]
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_CHUNK = 8192


class WSGIApp:
    """A WSGI application serving the feedback endpoint; made by :func:`wsgi_app`.

    The body is read only after the headers passed, and never past the limit. A WSGI
    application cannot in general time out a slow body: the server's timeouts bound it (see
    docs/web.md). Under gunicorn, whose workers read the socket as the application reads the
    body, the connection's socket (``gunicorn.socket``) is given ``body_timeout_s``: a client
    that stops sending is answered 408 then, not when ``--timeout`` kills the worker.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._timeout = endpoint.options.body_timeout_s

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one WSGI request."""
        headers = _headers(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        scheme = environ.get("wsgi.url_scheme", "http")
        answer = self.endpoint.before_body(method, path, headers, scheme=scheme)
        if answer is None:
            answer = self._with_body(environ, headers)
        # "Connection" is hop-by-hop: PEP 3333 leaves it to the server, which closes or
        # drains a connection whose body the application did not read.
        start_response(f"{answer.status} {_REASONS.get(answer.status, '')}", answer.headers)
        return [answer.body]

    def _with_body(self, environ: dict[str, Any], headers: dict[str, str]) -> Answer:
        limit = self.endpoint.options.max_body_bytes
        stream = environ["wsgi.input"]
        length = headers.get("content-length")
        if length is not None:
            # Checked against the limit already; never read past Content-Length (PEP 3333).
            try:
                body = _read_in_time(
                    stream, int(length), environ.get("gunicorn.socket"), self._timeout
                )
            except TimeoutError:
                return self.endpoint.too_slow(headers)
            if len(body) < int(length):
                return self.endpoint.too_slow(headers)  # the client stopped sending
            return self.endpoint.with_body(body, headers)
        if not environ.get("wsgi.input_terminated"):
            # A chunked body on a server that cannot say where it ends.
            return self.endpoint.length_required(headers)
        body = _read(stream, limit + 1)
        if len(body) > limit:
            return self.endpoint.too_large(headers)
        return self.endpoint.with_body(body, headers)


def _read_in_time(stream: Any, size: int, connection: object, timeout: float) -> bytes:
    """``_read``, within ``timeout`` seconds when the server lends its socket (gunicorn).

    Each wait for the client is bounded by the time left; a client that trickles a byte at a
    time is bounded by the server's own timeout. Raises ``TimeoutError``.
    """
    if not isinstance(connection, socket.socket):
        return _read(stream, size)
    before = connection.gettimeout()
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    left = size
    try:
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            connection.settimeout(remaining)
            chunk = _read(stream, min(left, 1024))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        with contextlib.suppress(OSError):  # closed meanwhile
            connection.settimeout(before)
    return b"".join(chunks)


def _read(stream: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        name[5:].replace("_", "-").lower(): value
        for name, value in environ.items()
        if name.startswith("HTTP_") and isinstance(value, str)
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return headers
