"""The web example, started on 127.0.0.1 and driven over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.otlp_receiver import OTLPReceiver

APP = Path(__file__).parent.parent / "examples" / "feedback_web_app.py"


class WebApp:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> None:
        """SIGTERM, as a process manager would: the app exits cleanly and flushes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0


@pytest.fixture
def web_app(receiver: OTLPReceiver) -> Iterator[WebApp]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    environment.update(
        OTEL_SERVICE_NAME="web-app",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_PYTHON_FEEDBACK_TOKEN_SECRET="a web app secret of 32 bytes ok!",
    )
    process = subprocess.Popen(
        [sys.executable, str(APP), "--port", "0"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on "), process.stderr.read() if process.stderr else line
    app = WebApp(process, line.split()[-1])
    yield app
    app.stop()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def _post(url: str, body: object) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_users_rate_answers_with_tokens_and_forgeries_are_refused(web_app: WebApp) -> None:
    url = web_app.url
    asked = _get(f"{url}/ask?q=refund")
    assert "30 days" in asked["answer"]
    token = asked["feedback_token"]

    status, created = _post(f"{url}/feedback", {"token": token, "score": 1, "comment": "ok"})
    assert status == 201
    assert created["id"]
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    status, refused = _post(f"{url}/feedback", {"token": forged, "score": 0})
    assert status == 403
    assert "signature" in refused["error"]
    status, bad = _post(f"{url}/feedback", {"token": token, "score": "five"})
    assert status == 400
    assert bad["error"].startswith("score: ")
    status, _ = _post(f"{url}/feedback", ["not", "an", "object"])
    assert status == 400
    status, _ = _post(f"{url}/feedback", {"score": 1})
    assert status == 403


def test_the_feedback_lands_on_the_answers_run(web_app: WebApp, receiver: OTLPReceiver) -> None:
    asked = _get(f"{web_app.url}/ask?q=refund")
    token = asked["feedback_token"]
    status, created = _post(
        f"{web_app.url}/feedback", {"token": token, "score": 1, "comment": "ok"}
    )
    assert status == 201
    web_app.stop()
    spans = {s.span.name: s for s in receiver.spans()}
    answer, carrier = spans["answer"], spans["feedback user_rating"]
    assert carrier.parent_span_id == answer.span_id
    assert asked["run"]["traceparent"] == f"00-{answer.trace_id:032x}-{answer.span_id:016x}-01"
    (log,) = receiver.logs()
    assert (log.trace_id, log.span_id) == (answer.trace_id, answer.span_id)
    record = log.feedback
    assert str(record.id) == created["id"]
    assert record.score == 1
    assert record.comment == "ok"
    assert record.feedback_source is not None
    assert record.feedback_source.type == "app"
