"""A loopback HTTP server standing in for a vendor's REST API in the exporter tests.

Real sockets on 127.0.0.1 and an ephemeral port. Every request is kept (method, path, query,
headers, JSON body) and handed to ``validate`` (the vendor's own published model of the body,
in the tests) before the scripted ``answer`` decides the reply. A body that fails validation
is answered 422 and kept in ``invalid``, so a test sees it fail.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.otlp_receiver import free_port


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Answer = Callable[[Seen], tuple[int, Any] | tuple[int, Any, dict[str, str]]]
"""The status, the JSON body and, optionally, more headers (``Retry-After``)."""


def ok(_seen: Seen) -> tuple[int, Any]:
    return 200, {}


class _Server(ThreadingHTTPServer):
    """A server for which a client that hangs up early is an ordinary event.

    Exporters under test give up on slow answers and close their connections (timeouts,
    cut-off bodies): writing the answer then fails with BrokenPipeError or
    ConnectionResetError, which the standard server would print as a traceback.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class StandIn:
    answer: Answer = ok
    validate: Callable[[Seen], None] = lambda _seen: None
    seen: list[Seen] = field(default_factory=list)
    invalid: list[tuple[Seen, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    url.path,
                    dict(urllib.parse.parse_qsl(url.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
                stand_in.seen.append(seen)
                try:
                    stand_in.validate(seen)
                except Exception as error:  # noqa: BLE001 - reported to the test, answered 422
                    stand_in.invalid.append((seen, str(error)))
                    status, reply, headers = 422, {"detail": f"invalid body: {error}"}, {}
                else:
                    status, reply, *more = stand_in.answer(seen)
                    headers = more[0] if more else {}
                data = json.dumps(reply).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PATCH(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def posted(self, path: str) -> list[Any]:
        return [s.body for s in self.seen if s.method == "POST" and s.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_url() -> str:
    """The URL of a port nothing listens on: an endpoint that is down."""
    return f"http://127.0.0.1:{free_port()}"
