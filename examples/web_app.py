"""End users rate answers from a web page: a FastAPI app with the feedback endpoint mounted.

    GET  /                       the page: ask a question, rate the answer
    POST /ask                    {"question"} -> {"answer", "run", "feedback_token"}
    POST /feedback/              the endpoint (otel_feedback.web): the page's ratings
    GET  /feedback/feedback.js   its browser module, <otel-feedback>

The answer runs inside a span; the page gets a token for that run and one key, and the
<otel-feedback> element under the answer posts the rating with it. Spans and feedback go where
the OTel environment says (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_PYTHON_FEEDBACK_EXPORTER``).

    pip install 'otel-feedback' fastapi uvicorn
    export OTEL_PYTHON_FEEDBACK_TOKEN_SECRET=$(openssl rand -base64 32)
    OTEL_PYTHON_FEEDBACK_EXPORTER=console OTEL_TRACES_EXPORTER=none \\
        python examples/web_app.py --port 8000
    # then open http://127.0.0.1:8000/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, Field

import otel_feedback
from otel_feedback import current_run
from otel_feedback.web import asgi_app

tracer = trace.get_tracer("web-app-example")
FEEDBACK_KEY = "user_rating"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ask the assistant</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem;
         color: #1d1d27; }
  form { display: flex; gap: .5rem; }
  input { flex: 1; font: inherit; padding: .4rem .6rem; border: 1px solid #c8c8d0;
          border-radius: 6px; }
  button { font: inherit; padding: .4rem .9rem; border-radius: 6px; border: 1px solid #3558d6;
           background: #3558d6; color: #fff; cursor: pointer; }
  .answer { margin-top: 1.5rem; padding: 1rem; border: 1px solid #e2e2ea; border-radius: 8px;
            background: #fafafe; }
  .answer p { margin: 0 0 .75rem; }
  .run { color: #6b6b7b; font-size: .8rem; margin-top: .75rem; }
  otel-feedback { --otel-feedback-accent: #3558d6; }
</style>
</head>
<body>
<h1>Ask the assistant</h1>
<form id="ask">
  <input id="question" name="question" aria-label="Question" required
         placeholder="How do refunds work?">
  <button type="submit">Ask</button>
</form>
<div id="answers"></div>
<script type="module">
  import "/feedback/feedback.js";

  const form = document.getElementById("ask");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = document.getElementById("question").value;
    const response = await fetch("/ask", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ question }),
    });
    const { answer, run, feedback_token } = await response.json();
    const box = document.createElement("div");
    box.className = "answer";
    const text = document.createElement("p");
    text.textContent = answer;  // never innerHTML: the answer is model output
    box.append(text);
    if (feedback_token) {
      const rating = document.createElement("otel-feedback");
      rating.setAttribute("token", feedback_token);
      box.append(rating);
      const ids = document.createElement("div");
      ids.className = "run";
      ids.textContent = `run ${run.run_id}`;
      box.append(ids);
    }
    document.getElementById("answers").replaceChildren(box);
  });
</script>
</body>
</html>
"""


class Question(BaseModel):
    question: str = Field(max_length=2000)


def answer(question: str) -> dict[str, Any]:
    """Answer inside a span, and hand the page a token to rate exactly this run."""
    with tracer.start_as_current_span("answer") as span:
        span.set_attribute("question", question)
        if "refund" in question.lower():
            reply = "Refunds are possible within 30 days of purchase, with the receipt."
        else:
            reply = "I can answer questions about refunds. Try: how do refunds work?"
        run = current_run()
        if run is None:  # tracing is off: there is no run to rate
            return {"answer": reply, "run": None, "feedback_token": None}
        token = run.feedback_token(key=FEEDBACK_KEY)
    return {"answer": reply, "run": run.as_dict(), "feedback_token": token}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    # uvicorn ends the process with the signal it stopped on, and a process ended by a
    # signal runs no exit hooks and loses buffered output: spans and feedback are flushed
    # here, at its shutdown, and the console exporter's lines with them.
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
    sys.stdout.flush()


def create_app(**endpoint_options: Any) -> FastAPI:
    """The app; ``endpoint_options`` go to ``asgi_app`` (e.g. ``allowed_origins``)."""
    app = FastAPI(title="Ask the assistant", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.post("/ask")
    def ask(body: Question) -> dict[str, Any]:
        return answer(body.question)

    # The three lines of the README: the endpoint and its module under /feedback/, taking
    # only the key the page's tokens are minted for (a token for another key gets 403).
    app.mount("/feedback", asgi_app(**{"keys": [FEEDBACK_KEY], **endpoint_options}))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    otel_feedback.configure()
    uvicorn.run(create_app(), host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
