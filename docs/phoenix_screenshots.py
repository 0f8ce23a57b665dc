"""Pictures of feedback in Arize Phoenix: starts Phoenix, runs the demo, photographs the trace.

Needs what ``bash .ci/run`` installs (``.venv`` and ``.venv-phoenix``), Debian's ``chromium``
and the ``playwright`` package (its driver only; the browser is Debian's)::

    apt-get install chromium
    .venv/bin/pip install playwright
    .venv/bin/python docs/phoenix_screenshots.py     # writes docs/phoenix-*.png
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.phoenix_server import PhoenixServer, phoenix_bin  # noqa: E402

PROJECT = "support-bot"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def run_demo(phoenix: PhoenixServer) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(
        OTEL_SERVICE_NAME=PROJECT,
        OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={PROJECT}",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{phoenix.url}/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",  # opentelemetry-distro says grpc
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_FEEDBACK_EXPORTER="phoenix",
        PHOENIX_COLLECTOR_ENDPOINT=phoenix.url,
    )
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    subprocess.run(
        [str(instrument), sys.executable, str(REPO / "examples" / "zero_code_app.py")],
        env=environment,
        check=True,
        timeout=180,
    )


def main() -> None:
    executable = phoenix_bin()
    if executable is None:
        sys.exit("Phoenix is not installed: run bash .ci/run first")
    with tempfile.TemporaryDirectory() as working_dir:
        phoenix = PhoenixServer(executable, Path(working_dir))
        try:
            run_demo(phoenix)
            spans = phoenix.wait_for(
                "the demo's spans", lambda: len(found := phoenix.spans(PROJECT)) >= 3 and found
            )
            answer = next(s for s in spans if s["name"] == "answer")["context"]["span_id"]
            phoenix.wait_for(
                "the annotations",
                lambda: len(phoenix.span_annotations(PROJECT, [answer])) >= 2,
            )
            photograph(f"{phoenix.url}/redirects/spans/{answer}")
        finally:
            phoenix.stop()


def photograph(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1500, "height": 820})
        page.goto(url, wait_until="networkidle")
        page.get_by_text("feedback user_rating").first.wait_for()
        page.screenshot(path=REPO / "docs" / "phoenix-annotations.png")
        page.get_by_role("tab", name="Events").click()
        event = page.get_by_text("gen_ai.evaluation.result").first
        event.click()  # unfold the event to show its attributes
        page.get_by_text("gen_ai.evaluation.explanation").first.wait_for()
        page.screenshot(path=REPO / "docs" / "phoenix-events.png")
        browser.close()
    print("wrote docs/phoenix-annotations.png and docs/phoenix-events.png")


if __name__ == "__main__":
    main()
