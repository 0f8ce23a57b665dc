"""The endpoint as a raw ASGI 3 application: uvicorn alone, or mounted in Starlette/FastAPI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from otel_feedback.web._core import Answer, Endpoint

__all__ = ["ASGIApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _BodyTooLargeError(Exception):
    pass


class _DisconnectedError(Exception):
    pass


class ASGIApp:
    """An ASGI application serving the feedback endpoint; made by :func:`asgi_app`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: not served; the server closes the connection
        headers = _headers(scope)
        path = _relative_path(scope)
        answer = self.endpoint.before_body(
            scope["method"], path, headers, scheme=scope.get("scheme", "http")
        )
        if answer is None:
            try:
                body = await asyncio.wait_for(
                    _read_body(receive, self.endpoint.options.max_body_bytes),
                    self.endpoint.options.body_timeout_s,
                )
            except asyncio.TimeoutError:
                answer = self.endpoint.too_slow(headers)
            except _BodyTooLargeError:
                answer = self.endpoint.too_large(headers)
            except _DisconnectedError:
                return
            else:
                answer = self.endpoint.with_body(body, headers)
        await _send(send, answer)


async def _read_body(receive: Receive, limit: int) -> bytes:
    # Enforced while reading too: a chunked body has no Content-Length to check first.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, answer: Answer) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    if answer.close:
        # The body was not read (or not all of it): the connection cannot be reused.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        # The first of repeated headers counts; names are lower case in ASGI.
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _relative_path(scope: Scope) -> str:
    # ASGI's path includes root_path (where the app is mounted) in current servers and
    # Starlette; older ones strip it. Either way, what follows the mount point is wanted.
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start or stop: the processor belongs to the application, not to us.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
