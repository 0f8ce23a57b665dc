"""``doctor`` checks each vendor exporter as it will be used, and never prints a secret.

LangSmith, MLflow and Langfuse cannot run here: loopback stand-ins answer as each service
does for the requests the probes send (the project lookup, an experiments search, the
keys' project), and refuse credentials other than the configured ones.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_cli import run
from tests.vendor_standin import Seen, StandIn, closed_url

LANGSMITH_KEY = "lsv2-s3cret-key-1111"
MLFLOW_TOKEN = "mlflow-s3cret-token-2222"
LANGFUSE_PUBLIC = "pk-lf-public-3333"
LANGFUSE_SECRET = "sk-lf-s3cret-4444"
URL_KEY = "url-s3cret-key-5555"
SECRETS = (LANGSMITH_KEY, MLFLOW_TOKEN, LANGFUSE_SECRET, URL_KEY, "s3cret")


def langsmith_answer(seen: Seen) -> tuple[int, Any]:
    if seen.headers.get("x-api-key") != LANGSMITH_KEY:
        return 401, {"detail": "Invalid token"}
    if seen.path == "/sessions":
        known = seen.query.get("name") == "support-bot"
        return 200, [{"id": "0b0e7e4e-4a4b-4c4d-8e8f-000000000001"}] if known else []
    return 404, {"detail": "Not Found"}


def mlflow_answer(seen: Seen) -> tuple[int, Any]:
    if seen.headers.get("authorization") != f"Bearer {MLFLOW_TOKEN}":
        return 401, {"error_code": "UNAUTHENTICATED"}
    if seen.path == "/api/2.0/mlflow/experiments/search":
        return 200, {"experiments": [{"experiment_id": "0", "name": "Default"}]}
    return 404, {}


def langfuse_answer(seen: Seen) -> tuple[int, Any]:
    expected = base64.b64encode(f"{LANGFUSE_PUBLIC}:{LANGFUSE_SECRET}".encode()).decode()
    if seen.headers.get("authorization") != f"Basic {expected}":
        return 401, {"message": "Invalid credentials"}
    if seen.path == "/api/public/projects":
        return 200, {"data": [{"id": "p1", "name": "demo"}]}
    return 404, {}


@pytest.fixture
def vendors() -> Iterator[dict[str, StandIn]]:
    stand_ins = {
        "langsmith": StandIn(answer=langsmith_answer),
        "mlflow": StandIn(answer=mlflow_answer),
        "langfuse": StandIn(answer=langfuse_answer),
    }
    yield stand_ins
    for stand_in in stand_ins.values():
        stand_in.close()


def vendor_env(vendors: dict[str, StandIn], **overrides: str) -> dict[str, str]:
    env = {
        "OTEL_PYTHON_FEEDBACK_EXPORTER": "langsmith,mlflow,langfuse",
        "LANGSMITH_ENDPOINT": vendors["langsmith"].url,
        "LANGSMITH_API_KEY": LANGSMITH_KEY,
        "LANGSMITH_PROJECT": "support-bot",
        "MLFLOW_TRACKING_URI": vendors["mlflow"].url,
        "MLFLOW_TRACKING_TOKEN": MLFLOW_TOKEN,
        "LANGFUSE_BASE_URL": vendors["langfuse"].url,
        "LANGFUSE_PUBLIC_KEY": LANGFUSE_PUBLIC,
        "LANGFUSE_SECRET_KEY": LANGFUSE_SECRET,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def checks(stdout: str) -> list[str]:
    return [x for x in stdout.splitlines() if x.startswith(("ok  ", "FAIL"))]


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output


def test_doctor_passes_when_every_vendor_takes_its_credentials(
    vendors: dict[str, StandIn],
) -> None:
    done = run("doctor", **vendor_env(vendors))
    assert done.returncode == 0, done.stdout
    assert checks(done.stdout) == [
        f"ok   LangSmith at {vendors['langsmith'].url} took the API key; "
        "project 'support-bot' exists (HTTP 200)",
        f"ok   MLflow at {vendors['mlflow'].url} answers its REST API (HTTP 200)",
        f"ok   Langfuse at {vendors['langfuse'].url} took the keys (HTTP 200)",
    ]
    assert_no_secret(done.stdout + done.stderr)
    for name in ("LANGSMITH_API_KEY", "MLFLOW_TRACKING_TOKEN", "LANGFUSE_SECRET_KEY"):
        assert any(x.split() == [name, "set"] for x in done.stdout.splitlines()), name
    # Each probe sent what the exporter sends: LangSmith's own first request.
    [lookup] = vendors["langsmith"].seen
    assert (lookup.method, lookup.path, lookup.query) == (
        "GET",
        "/sessions",
        {"name": "support-bot", "limit": "1"},
    )


@pytest.mark.parametrize(
    ("overrides", "failed"),
    [
        (
            {"LANGSMITH_API_KEY": "wrong-key-0000"},
            "LangSmith at {langsmith} refused the credentials (HTTP 401)",
        ),
        (
            {"LANGSMITH_API_KEY": ""},
            "langsmith: LANGSMITH_API_KEY is unset: no feedback can be sent",
        ),
        ({"LANGSMITH_PROJECT": "nowhere"}, "LangSmith at {langsmith} has no project 'nowhere'"),
        (
            {"MLFLOW_TRACKING_TOKEN": "wrong-token-0000"},
            "MLflow at {mlflow} refused the credentials (HTTP 401)",
        ),
        (
            {"MLFLOW_TRACKING_URI": "file:./mlruns"},
            "MLFLOW_TRACKING_URI=file:./mlruns is not an HTTP tracking server",
        ),
        (
            {"LANGFUSE_SECRET_KEY": ""},
            "langfuse: LANGFUSE_SECRET_KEY unset: no feedback can be sent",
        ),
        (
            {"LANGFUSE_SECRET_KEY": "sk-wrong-0000"},
            "Langfuse at {langfuse} refused the credentials (HTTP 401)",
        ),
    ],
)
def test_doctor_fails_a_vendor_whose_feedback_would_be_lost(
    vendors: dict[str, StandIn], overrides: dict[str, str], failed: str
) -> None:
    done = run("doctor", **vendor_env(vendors, **overrides))
    assert done.returncode == 1
    expected = failed.format(**{name: s.url for name, s in vendors.items()})
    [fail] = [x for x in checks(done.stdout) if x.startswith("FAIL")]
    assert fail.startswith(f"FAIL {expected}"), done.stdout
    assert "1 problem(s): feedback would be lost" in done.stdout
    assert_no_secret(done.stdout + done.stderr)


@pytest.mark.parametrize("exporter", ["langsmith", "mlflow", "langfuse", "phoenix"])
def test_doctor_fails_a_vendor_endpoint_that_is_down(
    vendors: dict[str, StandIn], exporter: str
) -> None:
    down = closed_url()
    done = run(
        "doctor",
        **vendor_env(
            vendors,
            OTEL_PYTHON_FEEDBACK_EXPORTER=exporter,
            LANGSMITH_ENDPOINT=down,
            MLFLOW_TRACKING_URI=down,
            LANGFUSE_BASE_URL=down,
            PHOENIX_COLLECTOR_ENDPOINT=down,
        ),
    )
    assert done.returncode == 1
    [fail] = checks(done.stdout)
    assert fail.startswith("FAIL ")
    assert f"at {down} is unreachable: nothing listens on" in fail


def test_doctor_never_prints_a_key_carried_in_a_url(vendors: dict[str, StandIn]) -> None:
    """``?api_key=...`` and ``user:password@`` are sent as configured, and never shown."""
    logs = StandIn()
    try:
        endpoint = f"http://user:{URL_KEY}@127.0.0.1:{urllib.parse.urlsplit(logs.url).port}"
        done = run(
            "doctor",
            OTEL_PYTHON_FEEDBACK_EXPORTER="otlp,phoenix",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{logs.url}/v1/logs?api_key={URL_KEY}",
            PHOENIX_COLLECTOR_ENDPOINT=endpoint,
        )
    finally:
        logs.close()
    assert_no_secret(done.stdout + done.stderr)
    assert f"{logs.url}/v1/logs?api_key=***" in done.stdout
    assert f"http://***@127.0.0.1:{urllib.parse.urlsplit(logs.url).port}" in done.stdout
    sent = {s.path: s for s in logs.seen}
    assert sent["/v1/logs"].query == {"api_key": URL_KEY}  # the probe sent it as configured


def test_record_to_a_vendor_without_its_key_sends_nothing_and_says_why() -> None:
    done = run(
        "record", "k", "--score", "1", "--trace-id", "0af7651916cd43dd8448eb211c80319c",
        OTEL_PYTHON_FEEDBACK_EXPORTER="otlp,langsmith",
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Not sent: OTEL_PYTHON_FEEDBACK_EXPORTER=otlp,langsmith: ")
    assert "set LANGSMITH_API_KEY" in done.stderr
    assert "nothing was sent" in done.stderr
    doctor = run("doctor", OTEL_PYTHON_FEEDBACK_EXPORTER="langsmith")
    assert doctor.returncode == 1  # the doctor agrees with the command it points to
    assert "LANGSMITH_API_KEY is unset" in doctor.stdout


def test_doctor_shows_the_online_evaluators_and_whether_each_loads(tmp_path: Any) -> None:
    (tmp_path / "judges.py").write_text("def helpful(run):\n    return True\n")
    done = run(
        "doctor",
        OTEL_PYTHON_FEEDBACK_EXPORTER="console",
        OTEL_PYTHON_FEEDBACK_EVALUATORS="judges:helpful,judges:missing,nomodule:judge",
        OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE="0.25",
        PYTHONPATH=str(tmp_path),
    )
    assert done.returncode == 1, done.stdout
    assert (
        "online evaluators judges:helpful, judges:missing, nomodule:judge (sample rate 0.25)"
        in " ".join(done.stdout.split())
    )
    assert checks(done.stdout)[-3:] == [
        "ok   evaluator judges:helpful: loads",
        "FAIL OTEL_PYTHON_FEEDBACK_EVALUATORS: 'judges' has no 'missing'",
        "FAIL OTEL_PYTHON_FEEDBACK_EVALUATORS: cannot import 'nomodule' "
        "(ModuleNotFoundError: No module named 'nomodule')",
    ]
