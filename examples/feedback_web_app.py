"""End users rate answers through signed feedback tokens: a web app on the standard library.

    GET  /ask?q=...   answers inside a span; returns {"answer", "run", "feedback_token"}
    POST /feedback    takes {"token", "score", "comment"}; records it on the answer's run

The browser only ever holds a token for one run and one key; forged, altered or expired
tokens are refused with 403. Spans and feedback go where the OTel environment says
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_PYTHON_FEEDBACK_EXPORTER``, ...).

    OTEL_PYTHON_FEEDBACK_EXPORTER=console OTEL_TRACES_EXPORTER=none \\
        python examples/feedback_web_app.py --port 8000
    curl 'http://127.0.0.1:8000/ask?q=refund'
    curl -X POST http://127.0.0.1:8000/feedback \\
        -d '{"token": "<feedback_token>", "score": 1, "comment": "helpful"}'
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from opentelemetry import trace

import otel_feedback
from otel_feedback import (
    FeedbackTokenError,
    InvalidFeedbackError,
    current_run,
    record_feedback_from_token,
)

# Every instance that shares this secret accepts the others' tokens.
SECRET = os.environ.get("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET") or secrets.token_urlsafe(32)
tracer = trace.get_tracer("feedback-web-app")


def answer(question: str) -> dict[str, Any]:
    with tracer.start_as_current_span("answer") as span:
        span.set_attribute("question", question)
        reply = "Refunds are possible within 30 days." if "refund" in question else "Ask me!"
        run = current_run()
        if run is None:  # tracing is off: no run to rate
            return {"answer": reply, "run": None, "feedback_token": None}
        token = run.feedback_token(key="user_rating", secret=SECRET)
    # The run's LangSmith ids and traceparent, for the frontend to show or link to.
    return {"answer": reply, "run": run.as_dict(), "feedback_token": token}


def feedback(body: dict[str, Any]) -> dict[str, Any]:
    record = record_feedback_from_token(
        body.get("token", ""),  # any JSON value: the token module checks it
        score=body.get("score"),
        comment=body.get("comment"),
        secret=SECRET,
    )
    return {"id": str(record.id) if record else None}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/ask":
            self._reply(404, {"error": "not found"})
            return
        self._reply(200, answer(parse_qs(url.query).get("q", [""])[0]))

    def do_POST(self) -> None:
        if self.path != "/feedback":
            self._reply(404, {"error": "not found"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if not isinstance(body, dict):
                raise TypeError("the body must be a JSON object")
            self._reply(201, feedback(body))
        except FeedbackTokenError as exc:
            self._reply(403, {"error": str(exc)})
        except (InvalidFeedbackError, ValueError, TypeError) as exc:
            self._reply(400, {"error": str(exc)})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    otel_feedback.configure()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # On SIGTERM, stop serving and return normally, so the exit hooks flush spans and feedback.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
