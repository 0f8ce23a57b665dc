"""A picture of ``otel-feedback summary --html``: made-up feedback of two weeks, photographed.

Needs the package installed in ``.venv`` and Debian's ``chromium``::

    apt-get install chromium
    .venv/bin/python docs/summary_screenshot.py     # writes docs/summary-report.png

The browser runs with every host name unresolvable: the page must show whole without the
network.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

from _chromium import BROWSER, FLAGS

from otel_feedback import Feedback, JsonlFeedbackExporter

REPO = Path(__file__).parent.parent
COMMAND = Path(sys.executable).parent / "otel-feedback"
CHROMIUM_FLAGS = [
    "--headless",
    *FLAGS,
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def made_up_history(path: Path) -> None:
    """Two weeks of feedback: a judge's correctness, users' thumbs, a helpfulness label."""
    rng = random.Random(14)
    start = datetime(2026, 11, 9, tzinfo=timezone.utc)
    records = []
    for day in range(14):
        # The judge's correctness climbs after a fix on day 6; users follow, noisily.
        good = 0.55 if day < 6 else 0.8
        for _ in range(rng.randint(8, 20)):
            at = start + timedelta(days=day, seconds=rng.randint(0, 86_399))
            kind = rng.random()
            if kind < 0.45:
                fields = {"key": "correctness", "score": float(rng.random() < good),
                          "feedback_source": {"type": "model"}}  # fmt: skip
            elif kind < 0.85:
                up = rng.random() < good + 0.1
                fields = {"key": "user_rating", "score": int(up), "value": "up" if up else "down",
                          "feedback_source": {"type": "app"}}  # fmt: skip
            else:
                label = rng.choice(["helpful", "helpful", "partly", "not helpful"])
                fields = {
                    "key": "helpfulness",
                    "value": label,
                    "feedback_source": {"type": "human"},
                }
            records.append(
                Feedback.model_validate(
                    {
                        "id": str(UUID(int=rng.getrandbits(128))),
                        "created_at": at.isoformat(),
                        "modified_at": at.isoformat(),
                        **fields,
                    }
                )
            )
    JsonlFeedbackExporter(path).export(records)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        history = Path(tmp) / "feedback.jsonl"
        page = Path(tmp) / "report.html"
        made_up_history(history)
        subprocess.run([str(COMMAND), "summary", "--html", str(page), str(history)], check=True)
        picture = REPO / "docs" / "summary-report.png"
        subprocess.run(
            [
                BROWSER,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                "--window-size=820,1200",
                f"--screenshot={picture}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
        print(f"wrote {picture}")


if __name__ == "__main__":
    main()
