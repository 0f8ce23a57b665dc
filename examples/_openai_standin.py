"""A loopback stand-in for the OpenAI chat completions API, so that the LLM judge runs offline.

This is not OpenAI and no model runs here. It answers ``POST /v1/chat/completions`` on
127.0.0.1 with a well-formed ChatCompletion whose content is computed from the prompt by a
fixed rule, so that ``examples/evaluators.py``'s ``llm_judge`` runs with no network and gives
the same verdict every time. It was written from the API's published shape and checked
against the ``openai`` package's own response models, not run against the service.

For a judge prompt, one whose last user message holds a ``<question>...</question>`` and an
``<answer>...</answer>``, the content is a JSON verdict ``{"score": 0..1, "reasoning": ...}``:

- an empty answer scores 0;
- an answer that states a figure the question does not have, when the question carries
  figures (a prompt with its retrieved context, say "2-year" where the answer says "1-year"),
  scores 0: it contradicts what it was given;
- otherwise the score is the mean of two checks: the answer addresses the question (it shares
  at least a third of the question's content words, compared by their first five letters),
  and it cites a knowledge-base article (``[kb-N]``), as the support bot of
  ``examples/llm_pipeline.py`` is told to.

Any other prompt gets a plain-text reply saying what the stand-in understands. Start one with
``start()`` (its base URL and a function that stops it) or ``with running() as base_url:``::

    base_url, stop = start()
    client = openai.OpenAI(base_url=base_url, api_key="unused")
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Messages", "judge_reply", "running", "start"]

Messages = Sequence[Mapping[str, Any]]
"""The request's ``messages``, as sent."""

# Words that say nothing about what a question asks.
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """a an and are as at be by can could do does for from has have how i if in is it its me
        my of on or our please should so that the their this to was we what when where which who
        why will with would you your""",
    )
)
QUESTION = re.compile(r"<question>(.*?)</question>", re.DOTALL)
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
FIGURE = re.compile(r"\d+(?:\.\d+)?")
CITATION = re.compile(r"\bkb-\d+\b")
# The largest request body read: a judge prompt is a few kilobytes.
MAX_BODY = 1 << 20


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) - STOPWORDS


def _stem(word: str) -> str:
    # Stemming of the crudest kind, so that "refunded" answers "refund".
    return word[:5]


def judge_reply(messages: Messages) -> str:
    """The stand-in's reply to ``messages``: a JSON verdict for a judge prompt (see above)."""
    prompt = str(messages[-1].get("content") or "") if messages else ""
    question, answer = QUESTION.search(prompt), ANSWER.search(prompt)
    if question is None or answer is None:
        return (
            "This stand-in only grades answers: send a <question>...</question> and an "
            "<answer>...</answer> in the last message."
        )
    asked, said = question[1].strip(), answer[1].strip()
    if not said:
        return json.dumps({"score": 0.0, "reasoning": "The answer is empty."})
    # Figures, less the numbers of the articles' ids ("kb-103").
    given = set(FIGURE.findall(CITATION.sub("", asked)))
    unsupported = sorted(set(FIGURE.findall(CITATION.sub("", said))) - given, key=float)
    if given and unsupported:
        reasoning = (
            f"The answer states {', '.join(unsupported)}, which the question's context does "
            f"not support (it gives {', '.join(sorted(given, key=float))})."
        )
        return json.dumps({"score": 0.0, "reasoning": reasoning})
    question_words = _words(asked)
    answer_stems = {_stem(word) for word in _words(said)}
    shared = {word for word in question_words if _stem(word) in answer_stems}
    addresses = bool(question_words) and len(shared) * 3 >= len(question_words)
    cited = sorted(set(CITATION.findall(said)))
    reasons = [
        f"It addresses the question ({', '.join(sorted(shared))})."
        if addresses
        else "It does not address what the question asks.",
        f"It cites {', '.join(cited)}." if cited else "It cites no knowledge-base article.",
    ]
    score = (addresses + bool(cited)) / 2
    return json.dumps({"score": score, "reasoning": " ".join(reasons)})


def _error_body(message: str, param: str | None) -> dict[str, Any]:
    # The shape of the API's errors, which the openai client reads into its exceptions.
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


def _problem(request: object) -> tuple[str, str | None] | None:
    """What is wrong with a chat completions request body, and in which field; None if valid."""
    if not isinstance(request, dict):
        return "The request body must be a JSON object.", None
    model = request.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter", "model"
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array", "messages"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return f"messages[{i}] must be an object with a 'role'", f"messages[{i}]"
        if "content" not in message:
            return f"messages[{i}] must have a 'content'", f"messages[{i}].content"
    return None


def _completion(model: str, messages: Messages, content: str) -> dict[str, Any]:
    prompt = json.dumps(messages, sort_keys=True)
    prompt_tokens = max(1, len(prompt) // 4)  # a tokenizer's count, roughly
    completion_tokens = max(1, len(content) // 4)
    # The same prompt gets the same id, as it gets the same content.
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-standin-{digest}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": None,
    }


def _handler(reply: Callable[[Messages], str]) -> type[BaseHTTPRequestHandler]:
    class ChatCompletions(BaseHTTPRequestHandler):
        # HTTP/1.0: one request a connection, so that stop() leaves no idle connection open.
        protocol_version = "HTTP/1.0"
        server_version = "openai-standin"

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0].rstrip("/") != "/v1/chat/completions":
                self._send(HTTPStatus.NOT_FOUND, _error_body(f"No route for {self.path}", None))
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error_body("Too large", None))
                return
            try:
                request = json.loads(self.rfile.read(length))
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._send(HTTPStatus.BAD_REQUEST, _error_body("The body is not valid JSON.", None))
                return
            problem = _problem(request)
            if problem is not None:
                self._send(HTTPStatus.BAD_REQUEST, _error_body(*problem))
                return
            messages = request["messages"]
            body = _completion(request["model"], messages, reply(messages))
            self._send(HTTPStatus.OK, body)

        def _send(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Say nothing: the example's output is its evaluations, not a request log."""

    return ChatCompletions


def start(reply: Callable[[Messages], str] = judge_reply) -> tuple[str, Callable[[], None]]:
    """Serve the stand-in on 127.0.0.1, on a free port, from a background thread.

    Args:
        reply: The assistant message's content for a request's ``messages``; the judging rule
            above unless told otherwise (tests give one that answers nonsense).

    Returns:
        The base URL to give ``openai.OpenAI(base_url=...)`` (``http://127.0.0.1:PORT/v1``),
        and a function that stops the server and waits for its thread.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(reply))
    server.daemon_threads = True
    # Polled often, so that stop() returns at once rather than after the default half second.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="openai-standin", daemon=True
    )
    thread.start()
    stopped = threading.Lock()

    def stop() -> None:
        # Stopping twice (a test's cleanup after an exit handler, say) is harmless.
        if stopped.acquire(blocking=False):
            server.shutdown()
            server.server_close()
            thread.join()

    return f"http://127.0.0.1:{server.server_port}/v1", stop


@contextmanager
def running(reply: Callable[[Messages], str] = judge_reply) -> Iterator[str]:
    """``start()`` as a context manager: the base URL inside, stopped on the way out."""
    base_url, stop = start(reply)
    try:
        yield base_url
    finally:
        stop()
