"""Pictures of the LLM pipeline demo's feedback in Arize Phoenix and in MLflow.

Starts a real Phoenix and a real MLflow tracking server (on 127.0.0.1, in temporary
directories), runs ``examples/llm_pipeline.py`` against each with nothing but environment
variables, then photographs one trace in each UI with Debian's headless Chromium:

- ``docs/phoenix-annotations.png``: the trace's spans with their annotation chips, and the
  answer's annotations (LLM judge, user, reviewer) as a table beside them;
- ``docs/phoenix-evaluations.png``: the online evaluators' ``evaluate <name>`` spans under the
  spans they judge, and the LLM call's annotations beside them: the LLM judge's verdict
  (annotator LLM) with the check in code (CODE);
- ``docs/phoenix-events.png``: the ``gen_ai.evaluation.result`` event on the retrieve span;
- ``docs/mlflow-assessments.png``: the trace's spans, and the answer's assessments (feedback
  and the reviewer's expectation) in MLflow's assessments pane beside them.

Needs what ``bash .ci/run`` installs (``.venv``, ``.venv-phoenix``, ``.venv-mlflow``),
Debian's ``chromium`` and the ``playwright`` package (its driver only; the browser is
Debian's)::

    apt-get install chromium
    .venv/bin/pip install playwright
    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).parent.parent
sys.path.insert(0, str(REPO))

from _chromium import BROWSER, FLAGS  # noqa: E402
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright  # noqa: E402

from tests.mlflow_server import MLflowServer, mlflow_bin  # noqa: E402
from tests.phoenix_server import PhoenixServer, phoenix_bin  # noqa: E402

DOCS = REPO / "docs"
PROJECT = "support-bot"
# The trace to photograph: the wrong answer, which the judge, the user and a reviewer judged.
QUESTION = "How long is the warranty on headphones?"
# What the demo records: 4 traces, feedback from checks, judge, user, reviewer, and the online
# evaluators (the LLM judge on each LLM call, the sentiment of each question).
RECORDS = 23
PICTURES = ("phoenix-annotations", "phoenix-evaluations", "phoenix-events", "mlflow-assessments")
VIEWPORT: ViewportSize = {"width": 1600, "height": 900}
CHROMIUM_FLAGS = [
    *FLAGS,
    # The pictures show local servers only: no host name but 127.0.0.1 resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def run_demo(**variables: str) -> None:
    """Run the demo with only these OpenTelemetry and vendor variables."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_", "PHOENIX_"))
    }
    environment.update(variables)
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "llm_pipeline.py")],
        env=environment,
        check=True,
        timeout=180,
        stdout=subprocess.DEVNULL,
    )


def wait_for(what: str, probe: Any, timeout: float = 60) -> Any:
    """Poll a server (it ingests on its own schedule) until ``probe()`` is truthy."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"never saw {what}")
        time.sleep(0.25)
    return found


def phoenix_pictures(browser: Browser, phoenix: PhoenixServer) -> None:
    run_demo(
        OTEL_SERVICE_NAME=PROJECT,
        OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={PROJECT}",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{phoenix.url}/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_PYTHON_FEEDBACK_EXPORTER="phoenix",
        PHOENIX_COLLECTOR_ENDPOINT=phoenix.url,
    )
    spans = phoenix.wait_for("the demo's spans", lambda: phoenix.spans(PROJECT))
    ids = [s["context"]["span_id"] for s in spans]
    phoenix.wait_for(
        "every annotation", lambda: len(phoenix.span_annotations(PROJECT, ids)) >= RECORDS
    )
    root = next(
        s
        for s in spans
        if s["name"] == "answer_question" and s["attributes"].get("input.value") == QUESTION
    )
    retrieve, generate = (
        next(
            s
            for s in spans
            if s["name"] == name and s["context"]["trace_id"] == root["context"]["trace_id"]
        )
        for name in ("retrieve", "generate")
    )

    page = browser.new_page(viewport=VIEWPORT)
    open_phoenix_span(page, phoenix, root["context"]["span_id"])
    annotations_table(page, "HUMAN")
    page.screenshot(path=DOCS / "phoenix-annotations.png")

    # The LLM call: the online judge's span under it, its verdict beside the check in code.
    open_phoenix_span(page, phoenix, generate["context"]["span_id"])
    page.get_by_text("evaluate llm_judge").first.wait_for()
    annotations_table(page, "LLM")
    page.screenshot(path=DOCS / "phoenix-evaluations.png")

    open_phoenix_span(page, phoenix, retrieve["context"]["span_id"])
    page.get_by_role("tab", name="Events").click()
    page.get_by_text("gen_ai.evaluation.result").first.click()  # unfold its attributes
    page.get_by_text("gen_ai.evaluation.explanation").first.wait_for()
    page.screenshot(path=DOCS / "phoenix-events.png")
    page.close()


def annotations_table(page: Page, shown: str) -> None:
    """Unfold the span's annotations as a table: name, annotator kind, score, explanation."""
    unfold = page.locator('button.card__collapsible-button[aria-label="Annotations"]')
    unfold.click()
    unfold.locator("xpath=ancestor::header").get_by_text("Table", exact=True).click()
    page.get_by_text(shown, exact=True).first.wait_for()
    # Narrow the score and kind columns so that labels and explanations show in full.
    resize_column(page, "score", -45)
    resize_column(page, "kind", -20)
    resize_column(page, "label", 20)
    page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover highlight in the picture


def open_phoenix_span(page: Page, phoenix: PhoenixServer, span_id: str) -> None:
    page.goto(f"{phoenix.url}/redirects/spans/{span_id}", wait_until="networkidle")
    page.get_by_text("feedback user_rating").first.wait_for()  # the trace tree is drawn


def resize_column(page: Page, name: str, by_pixels: int) -> None:
    """Drag the right edge of a column of Phoenix's annotations table."""
    table = page.get_by_test_id("span-annotations-table")
    header = table.locator("th", has=page.get_by_text(name, exact=True))
    box = header.locator(".resizer").bounding_box()
    assert box is not None, f"no resizer on the {name} column"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + by_pixels, y, steps=5)
    page.mouse.up()


def mlflow_pictures(browser: Browser, mlflow: MLflowServer) -> None:
    experiment = mlflow.create_experiment(PROJECT)
    run_demo(
        OTEL_SERVICE_NAME=PROJECT,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{mlflow.url}/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"x-mlflow-experiment-id={experiment}",
        OTEL_PYTHON_FEEDBACK_EXPORTER="mlflow",
        MLFLOW_TRACKING_URI=mlflow.url,
    )

    def traces() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = mlflow.call(
            "POST",
            "/api/3.0/mlflow/traces/search",
            {
                "locations": [
                    {
                        "type": "MLFLOW_EXPERIMENT",
                        "mlflow_experiment": {"experiment_id": experiment},
                    }
                ],
                "max_results": 100,
            },
        ).get("traces", [])
        return found

    def assessed() -> list[dict[str, Any]]:
        found = traces()
        # One assessment per record, and one more for the reviewer's correction.
        done = sum(len(t.get("assessments", [])) for t in found) >= RECORDS + 1
        return found if done else []

    listed = wait_for("every assessment", assessed)
    trace_id = next(t["trace_id"] for t in listed if json.loads(t["request_preview"]) == QUESTION)

    page = browser.new_page(viewport=VIEWPORT)
    page.goto(
        f"{mlflow.url}/#/experiments/{experiment}/traces?selectedEvaluationId={trace_id}",
        wait_until="load",
    )
    full_screen = page.locator('button[aria-label="Full screen"]')
    full_screen.wait_for()
    # MLflow opens its assistant beside the trace on a first visit: close it.
    assistant = page.get_by_role("button", name="Close", exact=True)
    if assistant.count() and assistant.first.is_visible():
        assistant.first.click()
    full_screen.click()
    page.locator('button[aria-label^="Assess trace"]').click()
    # Unfold every assessment, bottom first, so that the ones above do not move.
    toggles = page.locator(
        '[data-component-id="shared.model-trace-explorer.toggle-assessment-expanded"],'
        '[data-component-id="shared.model-trace-explorer.toggle-expectation-expanded"]'
    )
    toggles.first.wait_for()
    for i in reversed(range(toggles.count())):
        toggles.nth(i).click()
    page.get_by_text("Rationale").first.wait_for()
    page.screenshot(path=DOCS / "mlflow-assessments.png")
    page.close()


def _photographed(server: PhoenixServer | MLflowServer, photograph: Any) -> None:
    """Take ``server``'s pictures, then stop it whatever happened."""
    try:
        photograph()
    finally:
        server.stop()


def main() -> None:
    phoenix_executable, mlflow_executable = phoenix_bin(), mlflow_bin()
    if phoenix_executable is None or mlflow_executable is None:
        sys.exit("Phoenix and MLflow are not installed: run bash .ci/run first")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=BROWSER, args=CHROMIUM_FLAGS)
        # One server at a time: each takes most of the machine while it starts.
        (Path(tmp) / "phoenix").mkdir()
        phoenix = PhoenixServer(phoenix_executable, Path(tmp) / "phoenix")
        _photographed(phoenix, lambda: phoenix_pictures(browser, phoenix))
        (Path(tmp) / "mlflow").mkdir()
        mlflow = MLflowServer(mlflow_executable, Path(tmp) / "mlflow")
        _photographed(mlflow, lambda: mlflow_pictures(browser, mlflow))
        browser.close()
    print("wrote", ", ".join(f"docs/{name}.png" for name in PICTURES))


if __name__ == "__main__":
    main()
