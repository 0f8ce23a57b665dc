"""A loopback server standing in for the OpenAI API, for tests driving the real ``openai`` client.

It answers ``POST /v1/chat/completions`` with one fixed, non-streaming chat completion in the
shape of OpenAI's published ``ChatCompletion`` object (id, model, one choice with an assistant
message and ``finish_reason``, usage), whatever the request asks; every request body is kept.
It was written from OpenAI's API reference and checked only against the ``openai`` Python
client (which parses the answer into its own model): it was never run against the service.

Real sockets on 127.0.0.1 and an ephemeral port; use it as a context manager::

    with OpenAIStandIn(answer="Paris.") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["COMPLETION_ID", "MODEL", "OpenAIStandIn"]

COMPLETION_ID = "chatcmpl-standin-0001"
MODEL = "gpt-4o-mini-2024-07-18"


class OpenAIStandIn:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint on 127.0.0.1."""

    def __init__(self, answer: str = "Paris is the capital of France.") -> None:
        self.answer = answer
        self.requests: list[Any] = []
        """The JSON bodies posted, in order."""
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                stand_in.requests.append(body)
                if self.path.rstrip("/") == "/v1/chat/completions":
                    status, reply = 200, stand_in.completion()
                else:
                    status, reply = 404, {"error": {"message": f"no route {self.path}"}}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # The client must not reuse a connection the server closes after answering.
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """What ``openai.OpenAI(base_url=...)`` takes."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def completion(self) -> dict[str, Any]:
        """The fixed ``ChatCompletion`` answered to every request."""
        return {
            "id": COMPLETION_ID,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "system_fingerprint": "fp_standin",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        }

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> OpenAIStandIn:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
