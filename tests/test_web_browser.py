"""The example page in a real browser: headless Debian chromium driven by Playwright.

The example app (examples/web_app.py) runs under uvicorn in this process, its records going
to an in-memory exporter; a second server on another port plays a page of another origin.
Set ``OTEL_FEEDBACK_WEB_SCREENSHOT`` to a path to keep the page's picture (docs/web.md).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Pipeline
from tests.test_web import serve_asgi

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

EXAMPLE = Path(__file__).parent.parent / "examples" / "web_app.py"
CHROMIUM = "/usr/bin/chromium"
# As docs/_chromium.py: headless, offline, nothing of its own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "the example page's secret, 32 b!"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (.ci/run installs it)"
)


class Seen:
    """The example app, noting each answer of its feedback endpoint as the server sent it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers: list[tuple[str, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/feedback/":
                self.answers.append((scope["method"], message["status"]))
            await send(message)

        await self.app(scope, receive, noting)


@pytest.fixture
def example_app(
    global_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[int, Seen]]:
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", SECRET)
    # Loaded from its file, as the examples are not a package.
    spec = importlib.util.spec_from_file_location("web_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    seen = Seen(example.create_app())
    with serve_asgi(seen) as port:
        yield port, seen


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def _other_origin_page(endpoint: str) -> Any:
    """An ASGI app whose page, on another origin, tries to post to ``endpoint``."""
    page = f"""<!doctype html><title>elsewhere</title>
<script type="module">
  import {{ sendFeedback }} from "{endpoint}feedback.js";
  window.attempts = (async (token) => {{
    const outcome = {{}};
    try {{
      await sendFeedback({{ endpoint: "{endpoint}", token, score: 0, comment: "from elsewhere" }});
      outcome.json = "sent";
    }} catch (error) {{
      outcome.json = `refused ${{error.status}}`;
    }}
    // A "simple" request needs no preflight: the one a cross-site form could make.
    const opaque = await fetch("{endpoint}", {{
      method: "POST", mode: "no-cors", headers: {{ "content-type": "text/plain" }},
      body: JSON.stringify({{ token, score: 0 }}),
    }});
    outcome.simple = opaque.type;
    return outcome;
  }});
  window.ready = true;
</script>"""
    body = page.encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def test_a_user_rates_the_answer_changes_their_mind_and_another_origin_cannot_post(
    example_app: tuple[int, Seen], browser: Any, global_pipeline: Pipeline, tmp_path: Path
) -> None:
    port, seen = example_app
    base = f"http://127.0.0.1:{port}"
    page = browser.new_page(viewport={"width": 760, "height": 520})
    page.goto(f"{base}/")
    page.get_by_label("Question").fill("How do refunds work?")
    page.get_by_role("button", name="Ask").click()
    page.get_by_text("Refunds are possible within 30 days").wait_for()
    page.evaluate(
        "window.sent = []; document.addEventListener('feedback-sent', e => sent.push(e.detail))"
    )

    page.get_by_role("button", name="Not helpful").click()
    page.get_by_label("Comment (optional)").fill("It does not say how to get the receipt.")
    page.get_by_role("button", name="Send feedback").click()
    status = page.get_by_role("status")
    sync_api.expect(status).to_have_text(
        "Sent: not helpful, “It does not say how to get the receipt.”. Thank you!"
    )
    shot = tmp_path / "web-feedback.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if target := os.environ.get("OTEL_FEEDBACK_WEB_SCREENSHOT"):
        shutil.copyfile(shot, target)

    global_pipeline.flush()
    (answer,) = [s for s in global_pipeline.spans.get_finished_spans() if s.name == "answer"]
    (first,) = global_pipeline.feedback.get_finished_feedback()
    assert first.run_id == uuid.UUID(int=answer.context.span_id)
    assert first.trace_id == uuid.UUID(int=answer.context.trace_id)
    assert first.key == "user_rating"
    assert first.score == 0
    assert first.comment == "It does not say how to get the receipt."
    assert first.feedback_source is not None
    assert first.feedback_source.type == "app"
    shown_run = page.locator(".run").text_content()
    assert shown_run == f"run {first.run_id}"

    # The user changes their mind: the same feedback, exported again with the new score.
    page.get_by_role("button", name="Helpful", exact=True).click()
    assert page.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed") == (
        "true"
    )
    page.get_by_role("button", name="Send feedback").click()
    sync_api.expect(status).to_have_text(
        "Sent: helpful, “It does not say how to get the receipt.”. Thank you!"
    )
    global_pipeline.flush()
    first_again, second = global_pipeline.feedback.get_finished_feedback()
    assert first_again == first
    assert second.id == first.id
    assert second.score == 1
    assert second.comment == first.comment
    sent = page.evaluate("window.sent")
    assert [(d["id"], d["score"]) for d in sent] == [(str(first.id), 0), (str(first.id), 1)]
    token = page.locator("otel-feedback").get_attribute("token")

    # A page on another origin, with the very token, cannot post.
    assert seen.answers == [("POST", 201), ("POST", 201)]
    with serve_asgi(_other_origin_page(f"{base}/feedback/")) as other_port:
        elsewhere = browser.new_page()
        elsewhere.goto(f"http://127.0.0.1:{other_port}/")
        elsewhere.wait_for_function("window.ready === true")
        outcome = elsewhere.evaluate("token => window.attempts(token)", token)
    # The JSON post needs a preflight, which is refused (403, no CORS headers): the browser
    # never sends the POST and the page reads nothing. The simple one is sent and refused.
    assert outcome == {"json": "refused 0", "simple": "opaque"}
    assert seen.answers[2:] == [("OPTIONS", 403), ("POST", 403)]
    global_pipeline.flush()
    assert len(global_pipeline.feedback.get_finished_feedback()) == 2


def test_the_component_works_from_the_keyboard_and_shows_a_refusal(
    example_app: tuple[int, Seen], browser: Any, global_pipeline: Pipeline
) -> None:
    port, seen = example_app
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/")
    page.get_by_label("Question").fill("How do refunds work?")
    page.keyboard.press("Enter")  # submits the form
    helpful = page.get_by_role("button", name="Helpful", exact=True)
    helpful.wait_for()
    helpful.focus()
    page.keyboard.press("Tab")  # to "Not helpful"
    page.keyboard.press("Enter")  # rates; the comment box takes the focus
    page.keyboard.type("Too vague.")
    page.keyboard.press("Tab")  # to "Send feedback"
    page.keyboard.press("Enter")
    status = page.get_by_role("status")
    sync_api.expect(status).to_have_text("Sent: not helpful, “Too vague.”. Thank you!")
    global_pipeline.flush()
    (record,) = global_pipeline.feedback.get_finished_feedback()
    assert (record.score, record.comment) == (0, "Too vague.")

    # A token the endpoint refuses: the refusal is shown, and an event says which field.
    page.evaluate(
        "window.errors = [];"
        "document.addEventListener('feedback-error', e => errors.push(e.detail));"
        "document.querySelector('otel-feedback').setAttribute('token', 'x'.repeat(80))"
    )
    page.get_by_role("button", name="Send feedback").click()
    # The user reads what to do; the event keeps the endpoint's own words for the developer.
    sync_api.expect(status).to_have_text(
        "Couldn't send your feedback. Please reload the page and try again."
    )
    errors = page.evaluate("window.errors")
    assert [(e["status"], e["field"], e["message"]) for e in errors] == [
        (403, "token", "token: not valid: garbled, another secret's, or expired")
    ]
    assert seen.answers == [("POST", 201), ("POST", 403)]


WIDGETS = """<!doctype html><title>widgets</title>
<script>
  // Every request of the page counted while under way, to know when all have ended.
  window.inflight = 0;
  const realFetch = window.fetch;
  window.fetch = async (...args) => {{
    window.inflight += 1;
    try {{ return await realFetch(...args); }} finally {{ window.inflight -= 1; }}
  }};
  window.sent = [];
  window.errors = [];
  document.addEventListener("feedback-sent", (e) => sent.push([e.target.id, e.detail]));
  document.addEventListener("feedback-error", (e) => errors.push([e.target.id, e.detail]));
</script>
<script type="module" src="/feedback/feedback.js"></script>
<otel-feedback id="long" token="{long}"></otel-feedback>
<otel-feedback id="quick" no-comment token="{quick}"></otel-feedback>
<otel-feedback id="offline" no-comment endpoint="http://127.0.0.1:{closed}/" token="{quick}">
</otel-feedback>
"""


def test_end_users_read_short_messages_and_a_double_click_sends_once(
    browser: Any, global_pipeline: Pipeline
) -> None:
    import socket

    from otel_feedback import create_feedback_token
    from otel_feedback.web import wsgi_app
    from tests.test_web import serve_wsgi

    def made(key: str) -> str:
        run = int.from_bytes(os.urandom(8), "big") | 1
        return create_feedback_token(trace_id=run << 64 | run, run_id=run, key=key, secret=SECRET)

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    body = WIDGETS.format(long=made("user_rating"), quick=made("user_rating"), closed=closed)
    endpoint = wsgi_app(secret=SECRET, keys=["user_rating"])

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path.startswith("/feedback/"):
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/feedback", path[len("/feedback") :]
            return endpoint(environ, start_response)
        start_response("200 OK", [("content-type", "text/html; charset=utf-8")])
        return [body.encode()]

    # waitress's own body limit answers 413 itself, in text/plain: not the endpoint's JSON.
    with serve_wsgi(app, max_request_body_size=1024) as port:
        page = browser.new_page()
        debug: list[str] = []
        page.on("console", lambda m: debug.append(m.text) if m.type == "debug" else None)
        page.goto(f"http://127.0.0.1:{port}/")

        long = page.locator("#long")
        long.get_by_role("button", name="Not helpful").click()
        long.get_by_label("Comment (optional)").fill("far too long " * 120)
        long.get_by_role("button", name="Send feedback").click()
        sync_api.expect(long.get_by_role("status")).to_have_text("Your comment is too long.")

        quick = page.locator("#quick")
        quick.get_by_role("button", name="Helpful", exact=True).dblclick()
        sync_api.expect(quick.get_by_role("status")).to_have_text("Sent: helpful. Thank you!")

        offline = page.locator("#offline")
        offline.get_by_role("button", name="Not helpful").click()
        sync_api.expect(offline.get_by_role("status")).to_have_text("No connection — try again.")
        page.wait_for_function("window.inflight === 0")
        sent = page.evaluate("window.sent")
        errors = page.evaluate("window.errors")
    assert [(where, detail["score"]) for where, detail in sent] == [("quick", 1)]
    assert [(where, detail["status"]) for where, detail in errors] == [
        ("long", 413),
        ("offline", 0),
    ]
    assert any("otel-feedback: not sent: 413" in line for line in debug)
    global_pipeline.flush()
    assert len(global_pipeline.feedback.get_finished_feedback()) == 1
