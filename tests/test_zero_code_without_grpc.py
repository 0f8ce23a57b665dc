"""The documented install has no gRPC: ``pip install otel-feedback opentelemetry-distro``.

opentelemetry-distro makes OTLP/gRPC the default protocol. These tests run the example app in
a real virtual environment that holds every package of this one except the OTLP/gRPC exporter
and grpcio (symbolic links, built once per session), against the test receiver on 127.0.0.1.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_feedback._environment import OTLP_GRPC_PORT, OTLP_HTTP_PORT, http_endpoint_beside_grpc
from tests.otlp_receiver import OTLPReceiver

APP = Path(__file__).parent.parent / "examples" / "zero_code_app.py"
INSTRUMENT = "from opentelemetry.instrumentation.auto_instrumentation import run; run()"
# The gRPC exporter's package, its distribution, and grpcio's.
LEFT_OUT = ("grpc", "grpcio-", "opentelemetry_exporter_otlp_proto_grpc-")
GRPC_PACKAGE = ("opentelemetry", "exporter", "otlp", "proto", "grpc")


def _link_all_but_grpc(source: Path, target: Path, depth: int = 0) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if depth == 0 and entry.name.startswith(LEFT_OUT):
            continue
        if depth < len(GRPC_PACKAGE) and entry.name == GRPC_PACKAGE[depth]:
            if depth == len(GRPC_PACKAGE) - 1:
                continue  # opentelemetry/exporter/otlp/proto/grpc itself
            _link_all_but_grpc(entry, target / entry.name, depth + 1)
        else:
            (target / entry.name).symlink_to(entry)


@pytest.fixture(scope="session")
def python_without_grpc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv-without-grpc")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    for entry in site.iterdir():  # what venv put there: replaced by this environment's
        entry.unlink()
    _link_all_but_grpc(Path(sysconfig.get_path("purelib")), site)
    python = root / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import opentelemetry.exporter.otlp.proto.grpc"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "ModuleNotFoundError" in probe.stderr
    return python


def run_app(
    python: Path, *, instrumented: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """The example app under opentelemetry-instrument, with the given variables only."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))
    }
    environment.update(OTEL_SERVICE_NAME="support-bot", OTEL_BSP_SCHEDULE_DELAY="50", **env)
    command = [str(python), "-c", INSTRUMENT, str(python)] if instrumented else [str(python)]
    return subprocess.run(
        [*command, str(APP)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def receiver_on_4318() -> Iterator[OTLPReceiver]:
    """A receiver whose HTTP port is the conventional 4318 (nothing listens on 4317)."""
    try:
        receiver = OTLPReceiver(http_port=OTLP_HTTP_PORT)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        pytest.skip(f"port {OTLP_HTTP_PORT} is in use on this machine")
    with receiver:
        yield receiver


GRPC_ENDPOINT = f"http://127.0.0.1:{OTLP_GRPC_PORT}"
INSTALL = "pip install 'otel-feedback[grpc]'"


def test_with_the_distro_default_the_first_feedback_says_why_nothing_is_exported(
    python_without_grpc: Path,
) -> None:
    # Only the endpoint: the SDK's own start-up fails (no gRPC exporter) before any
    # instrumentor runs. The app still runs, and says how to fix it.
    done = run_app(python_without_grpc, OTEL_EXPORTER_OTLP_ENDPOINT=GRPC_ENDPOINT)
    assert "Refunds are possible" in done.stdout
    assert "InvalidFeedbackError" not in done.stderr
    assert done.stderr.count("opentelemetry-instrument set up no tracing") == 1
    assert INSTALL in done.stderr
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in done.stderr


def test_with_http_chosen_the_documented_install_exports_spans_and_feedback(
    python_without_grpc: Path, receiver: OTLPReceiver
) -> None:
    # The one variable the distro honours: spans, metrics, logs and feedback over HTTP.
    done = run_app(
        python_without_grpc,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_METRICS_EXPORTER="none",
    )
    assert "Refunds are possible" in done.stdout
    assert {s.span.name for s in receiver.spans()} == {"answer", "retrieve", "feedback user_rating"}
    assert sorted(log.attributes["gen_ai.evaluation.name"] for log in receiver.logs()) == [
        "correctness",
        "retrieval_hit",
        "user_rating",
    ]


def test_feedback_configured_for_grpc_goes_over_http_to_the_same_receiver(
    python_without_grpc: Path, receiver_on_4318: OTLPReceiver
) -> None:
    # Spans set to HTTP for themselves; feedback (logs) left on the distro's gRPC.
    done = run_app(
        python_without_grpc,
        OTEL_EXPORTER_OTLP_ENDPOINT=GRPC_ENDPOINT,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver_on_4318.http_endpoint}/v1/traces",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    assert "Refunds are possible" in done.stdout
    logs = receiver_on_4318.logs()
    assert sorted(log.attributes["gen_ai.evaluation.name"] for log in logs) == [
        "correctness",
        "retrieval_hit",
        "user_rating",
    ]
    assert {log.transport for log in logs} == {"http"}
    assert done.stderr.count("the gRPC exporter is not installed: sending feedback") == 1
    assert f"http://127.0.0.1:{OTLP_HTTP_PORT}/v1/logs" in done.stderr
    assert INSTALL in done.stderr


CONFIGURED_APP = """
from opentelemetry import trace
import otel_feedback

otel_feedback.configure()
with trace.get_tracer("app").start_as_current_span("answer"):
    otel_feedback.record_feedback("correctness", score=1)
trace.get_tracer_provider().shutdown()
"""


def test_configure_sends_spans_and_feedback_over_http_when_grpc_is_missing(
    python_without_grpc: Path, receiver_on_4318: OTLPReceiver
) -> None:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))
    }
    environment.update(
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_ENDPOINT=GRPC_ENDPOINT
    )
    done = subprocess.run(
        [str(python_without_grpc), "-c", CONFIGURED_APP],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert [s.span.name for s in receiver_on_4318.spans()] == ["answer"]
    assert [log.attributes["gen_ai.evaluation.name"] for log in receiver_on_4318.logs()] == [
        "correctness"
    ]
    assert "sending spans over OTLP/HTTP to http://127.0.0.1:4318/v1/traces" in done.stderr
    assert "sending feedback over OTLP/HTTP to http://127.0.0.1:4318/v1/logs" in done.stderr


@pytest.mark.parametrize(
    ("grpc", "http"),
    [
        ("http://collector:4317", "http://collector:4318/v1/logs"),
        ("collector:4317", "http://collector:4318/v1/logs"),
        ("https://otlp.example.com:4317/", "https://otlp.example.com:4318/v1/logs"),
        ("http://[::1]:4317", "http://[::1]:4318/v1/logs"),
        ("http://collector:14317", "http://collector:14317/v1/logs"),
        ("https://otlp.example.com", "https://otlp.example.com/v1/logs"),
    ],
)
def test_the_http_endpoint_beside_a_grpc_one(grpc: str, http: str) -> None:
    assert http_endpoint_beside_grpc(grpc, "/v1/logs") == http
