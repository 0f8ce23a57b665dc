"""The ``otel-feedback`` console script, run as users run it: a real process, real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from otel_feedback import Feedback, JsonlFeedbackExporter
from tests.otlp_receiver import OTLPReceiver, free_port

COMMAND = Path(sys.executable).parent / "otel-feedback"
TRACE = "0af7651916cd43dd8448eb211c80319c"
RUN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{RUN}-01"
SECRET_HEADER = "Bearer otlp-s3cret-value-4242"
SECRET_PHOENIX = "phx-s3cret-value-9999"
SECRET_TOKEN = "token-s3cret-value-at-least-16-bytes"


def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script with only the given OTEL/PHOENIX variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    clean.update(env)
    clean["COLUMNS"] = "200"  # rich wraps at the terminal width; keep lines whole
    return subprocess.run(
        [str(COMMAND), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
        check=False,
    )


def otlp_env(receiver: OTLPReceiver) -> dict[str, str]:
    return {
        "OTEL_PYTHON_FEEDBACK_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{receiver.http_endpoint}/v1/logs",
        "OTEL_SERVICE_NAME": "cli-tests",
    }


# --- record ---------------------------------------------------------------------------------


def test_record_delivers_before_it_returns(receiver: OTLPReceiver) -> None:
    done = run(
        "record", "correctness", "--score", "0.5", "--comment", "close enough",
        "--trace-id", TRACE, "--run-id", RUN, "--user-id", "ann",
        **otlp_env(receiver),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [log] = receiver.logs()  # no flush here: the command waited for delivery
    record = log.feedback
    assert (record.key, record.score, record.comment) == ("correctness", 0.5, "close enough")
    assert record.trace_id == UUID(TRACE)
    assert record.run_id == UUID(int=int(RUN, 16))
    assert record.feedback_source is not None
    assert record.feedback_source.user_id == "ann"
    assert log.resource["service.name"] == "cli-tests"
    assert str(record.id) in done.stdout


def test_record_by_traceparent_with_a_label(receiver: OTLPReceiver) -> None:
    done = run(
        "record", "thumbs", "--value", "up", "--source-type", "app",
        "--traceparent", TRACEPARENT, **otlp_env(receiver),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [log] = receiver.logs()
    assert (log.trace_id, log.span_id) == (int(TRACE, 16), int(RUN, 16))
    assert log.feedback.value == "up"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--score", "nan", "--trace-id", TRACE], "--score"),
        (["--score", "high", "--trace-id", TRACE], "--score"),
        (["--score", "1", "--trace-id", "not-an-id"], "--trace-id"),
        (["--score", "1", "--trace-id", TRACE, "--run-id", "0" * 16], "--run-id"),
        (["--score", "1"], "--traceparent"),
    ],
)
def test_record_refuses_bad_input_naming_the_option(
    receiver: OTLPReceiver, args: list[str], named: str
) -> None:
    done = run("record", "correctness", *args, **otlp_env(receiver))
    assert done.returncode == 2
    assert named in done.stderr
    assert receiver.requests == 0


def test_record_refused_by_the_endpoint_exits_1(receiver: OTLPReceiver) -> None:
    receiver.faults = [400]
    done = run("record", "k", "--score", "1", "--trace-id", TRACE, **otlp_env(receiver))
    assert done.returncode == 1
    assert "Not delivered" in done.stderr
    assert "refused by OTLPFeedbackExporter" in done.stderr
    # The command says it once, in its own words (the SDK's log line stays out of it).
    assert done.stderr.count("HTTP 400") == 1
    assert "Failed to export logs batch" not in done.stderr
    assert receiver.logs() == []
    verbose = run("-v", "record", "k", "--score", "1", "--trace-id", TRACE, **otlp_env(receiver))
    assert verbose.returncode == 1
    assert "HTTP 400" in verbose.stderr


def test_record_to_an_endpoint_that_is_down_exits_1_within_its_timeout() -> None:
    done = run(
        "record", "k", "--score", "1", "--trace-id", TRACE, "--timeout", "1",
        OTEL_PYTHON_FEEDBACK_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"http://127.0.0.1:{free_port()}/v1/logs",
        OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="1",
    )  # fmt: skip
    assert done.returncode == 1
    assert "not delivered by OTLPFeedbackExporter within 1 s" in done.stderr


def test_record_with_no_exporter_exits_1() -> None:
    done = run("record", "k", "--score", "1", "--trace-id", TRACE,
               OTEL_PYTHON_FEEDBACK_EXPORTER="none")  # fmt: skip
    assert done.returncode == 1
    assert "OTEL_PYTHON_FEEDBACK_EXPORTER=none" in done.stderr


# --- import ---------------------------------------------------------------------------------


def exported_line(tmp_path: Path) -> tuple[str, Feedback]:
    """A line exactly as the jsonl exporter writes it."""
    record = Feedback.model_validate(
        {
            "id": "9d3292de-dc61-41f9-9956-bd5d2a0dd1c4",
            "created_at": "2026-11-20T03:09:24Z",
            "modified_at": "2026-11-20T03:09:24Z",
            "trace_id": str(UUID(TRACE)),
            "run_id": str(UUID(int=int(RUN, 16))),
            "key": "correctness",
            "score": 0,
            "comment": "expected y = 3",
            "correction": {"y": 3},
            "feedback_source": {
                "type": "model",
                "metadata": {"judge": "gpt", "__run": {"run_id": str(UUID(int=7))}},
            },
        }
    )
    path = tmp_path / "exported.jsonl"
    assert JsonlFeedbackExporter(path).export([record]).name == "SUCCESS"
    return path.read_text().strip(), record


def test_import_sends_good_lines_and_names_each_refused_one(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    line, original = exported_line(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps({"key": "helpful", "score": True, "trace_id": TRACE, "run_id": RUN}),
                json.dumps({"key": "helpful", "score": "high", "trace_id": TRACE}),
                "{not json",
                json.dumps({"key": "helpful", "value": "yes", "colour": "red", "trace_id": TRACE}),
                "",
                json.dumps({"key": "helpful", "value": "yes"}),
                line,
                json.dumps({"key": "tone", "value": "kind", "traceparent": TRACEPARENT}),
            ]
        )
        + "\n"
    )
    done = run("import", str(source), **otlp_env(receiver))
    assert done.returncode == 1
    assert "sent 3 of 7 record(s)" in done.stdout
    refused = [x for x in done.stderr.splitlines() if x.startswith("line ")]
    assert refused == [
        "line 2: score: must be a bool, int or float, got str",
        "line 3: not JSON: Expecting property name enclosed in double quotes at column 2",
        "line 4: colour: unknown field",
        "line 6: trace_id: missing (give trace_id [and run_id], or traceparent)",
    ]
    received = {log.feedback.id: log.feedback for log in receiver.logs()}
    assert len(received) == 3
    again = received[original.id]  # the exporter's record keeps its id and its fields
    exclude = {"created_at", "modified_at"}
    assert again.model_dump(exclude=exclude) == original.model_dump(exclude=exclude)

    # A second import of the same file sends the same ids: backends update, not duplicate.
    receiver.clear()
    assert run("import", str(source), **otlp_env(receiver)).returncode == 1
    assert {log.feedback.id for log in receiver.logs()} == set(received)


def test_import_csv_from_stdin(receiver: OTLPReceiver) -> None:
    table = (
        "key,score,value,trace_id,run_id,comment,error\n"
        f"quality,1,,{TRACE},{RUN},fine,\n"
        f"quality,x,,{TRACE},,bad score,\n"
        f'quality,0.25,meh,{TRACE},{RUN},"two\nlines",false\n'
        f"quality,1,,{TRACE},,,maybe\n"
    )
    done = run("import", "-", stdin=table, **otlp_env(receiver))
    assert done.returncode == 1
    assert "sent 2 of 4 record(s)" in done.stdout
    assert "line 3: score: must be a number, true or false, got 'x'" in done.stderr
    assert "line 6: error: must be true or false, got 'maybe'" in done.stderr
    records = sorted((log.feedback for log in receiver.logs()), key=lambda r: float(r.score or 0))
    assert [(r.score, r.value, r.comment) for r in records] == [
        (0.25, "meh", "two\nlines"),
        (1, None, "fine"),
    ]


def test_import_names_lines_one_exporter_refused_while_another_took_them(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    receiver.faults = [400]  # the OTLP endpoint refuses every request for good
    written = tmp_path / "also.jsonl"
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"key": "k", "score": i, "trace_id": TRACE, "run_id": RUN}) + "\n"
            for i in range(2)
        )
    )
    both = {**otlp_env(receiver), "OTEL_PYTHON_FEEDBACK_EXPORTER": "otlp,jsonl"}
    done = run("import", str(source), OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(written), **both)
    assert done.returncode == 1
    assert "sent 0 of 2 record(s) to OTLPFeedbackExporter, JsonlFeedbackExporter" in done.stdout
    assert [x for x in done.stderr.splitlines() if x.strip()] == [
        "line 1: refused by OTLPFeedbackExporter: the endpoint answered HTTP 400",
        "line 2: refused by OTLPFeedbackExporter: the endpoint answered HTTP 400",
    ]
    assert len(written.read_text().splitlines()) == 2  # the other exporter delivered both
    assert receiver.logs() == []


def test_import_of_a_clean_file_exits_0(receiver: OTLPReceiver, tmp_path: Path) -> None:
    source = tmp_path / "many.jsonl"
    rows = [{"key": "k", "score": i, "trace_id": TRACE, "run_id": RUN} for i in range(1200)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Batches of 100 through a queue of 200: the command must pace itself, not overflow.
    done = run(
        "import", str(source), OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE="200",
        OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE="100", **otlp_env(receiver),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sent 1200 of 1200 record(s)" in done.stdout
    assert sorted(float(log.feedback.score or 0) for log in receiver.logs()) == list(range(1200))


# --- summary --------------------------------------------------------------------------------


@pytest.fixture
def history(tmp_path: Path) -> Path:
    def record(key: str, day: int, source: str, **fields: Any) -> Feedback:
        at = datetime(2026, 11, day, 12, tzinfo=timezone.utc).isoformat()
        return Feedback.model_validate(
            {
                "id": str(UUID(int=len(made) + 1)),
                "created_at": at,
                "modified_at": at,
                "key": key,
                "feedback_source": {"type": source},
                **fields,
            }
        )

    made: list[Feedback] = []
    for day, source, score in [
        (20, "user", 1),
        (20, "user", 0),
        (21, "model", 0.5),
        (22, "user", 1),
    ]:
        made.append(record("correctness", day, source, score=score))
    for day, label in [(20, "up"), (21, "down"), (21, "up")]:
        made.append(record("thumbs", day, "app", value=label))
    path = tmp_path / "feedback.jsonl"
    JsonlFeedbackExporter(path).export(made)
    return path


def test_summary_json_by_key(history: Path) -> None:
    done = run("summary", "--format", "json", str(history))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"key": "correctness", "count": 4, "mean": 0.625, "min": 0.0, "max": 1.0, "values": {}},
        {"key": "thumbs", "count": 3, "mean": None, "min": None, "max": None,
         "values": {"up": 2, "down": 1}},
    ]  # fmt: skip


def test_summary_json_by_source_and_by_day(history: Path) -> None:
    by_source = json.loads(
        run("summary", "--by", "source", "--format", "json", str(history)).stdout
    )
    assert [(r["key"], r["source"], r["count"], r["mean"]) for r in by_source] == [
        ("correctness", "model", 1, 0.5),
        ("correctness", "user", 3, 2 / 3),
        ("thumbs", "app", 3, None),
    ]
    by_day = json.loads(run("summary", "--by", "day", "--format", "json", str(history)).stdout)
    assert [(r["key"], r["day"], r["count"]) for r in by_day] == [
        ("correctness", "2026-11-20", 2),
        ("correctness", "2026-11-21", 1),
        ("correctness", "2026-11-22", 1),
        ("thumbs", "2026-11-20", 1),
        ("thumbs", "2026-11-21", 2),
    ]


def test_summary_csv_and_table(history: Path) -> None:
    csv_out = run("summary", "--by", "source", "--format", "csv", str(history))
    assert csv_out.returncode == 0
    assert csv_out.stdout.splitlines() == [
        "key,source,count,mean,min,max,values",
        "correctness,model,1,0.5,0.5,0.5,{}",
        "correctness,user,3,0.6666666666666666,0.0,1.0,{}",
        'thumbs,app,3,,,,"{""down"": 1, ""up"": 2}"',
    ]
    table = run("summary", str(history))
    assert table.returncode == 0
    [correctness] = [x for x in table.stdout.splitlines() if "correctness" in x]
    assert correctness.replace("│", " ").split() == ["correctness", "4", "0.625", "0", "1"]
    [thumbs] = [x for x in table.stdout.splitlines() if "thumbs" in x]
    assert "up (2)" in thumbs
    assert "down (1)" in thumbs


def test_summary_html_is_self_contained(history: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = run("summary", "--html", str(page), str(history))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert html.count("<svg") == 2  # a chart per key
    assert "<h2>correctness</h2>" in html
    assert "<h2>thumbs</h2>" in html
    assert "2026-11-21: mean 0.5" in html  # the tooltip of a day's point
    for request in ("<script", "<link", "<img", "src=", "@import", "url("):
        assert request not in html
    # The only URL is the SVG namespace, which is a name, never fetched.
    assert html.count("http") == html.count('xmlns="http://www.w3.org/2000/svg"')


def test_summary_names_unreadable_lines_and_exits_1(history: Path) -> None:
    with history.open("a") as file:
        file.write('{"key": "x"}\n')
    done = run("summary", "--format", "json", str(history))
    assert done.returncode == 1
    assert f"{history}:8: id: Field required" in done.stderr
    assert sum(r["count"] for r in json.loads(done.stdout)) == 7


# --- doctor ---------------------------------------------------------------------------------


class TracesOnly:
    """A loopback server that takes OTLP traces and answers 405 on /v1/logs, as MLflow does."""

    def __init__(
        self, logs_status: int = 405, traces_status: int = 200, get_status: int = 404
    ) -> None:
        self.headers: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.headers.append(dict(self.headers))
                self.send_response(get_status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.headers.append(dict(self.headers))
                status = logs_status if self.path == "/v1/logs" else traces_status
                if self.path not in ("/v1/logs", "/v1/traces"):
                    status = 404
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def traces_only() -> Iterator[TracesOnly]:
    server = TracesOnly()
    yield server
    server.stop()


def test_doctor_finds_an_endpoint_without_logs_and_keeps_secrets(traces_only: TracesOnly) -> None:
    done = run(
        "doctor",
        OTEL_EXPORTER_OTLP_ENDPOINT=traces_only.endpoint,
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization={SECRET_HEADER}",
        PHOENIX_API_KEY=SECRET_PHOENIX,
        OTEL_PYTHON_FEEDBACK_TOKEN_SECRET=SECRET_TOKEN,
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert f"{traces_only.endpoint}/v1/logs answers HTTP 405" in output
    assert "takes traces" in output
    for advice in ("OTEL_PYTHON_FEEDBACK_EXPORTER=phoenix", "Phoenix", "MLflow", "=none"):
        assert advice in output
    for secret in (SECRET_HEADER, SECRET_PHOENIX, SECRET_TOKEN, "s3cret"):
        assert secret not in output
    for name in (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "PHOENIX_API_KEY",
        "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET",
    ):
        assert any(x.split() == [name, "set"] for x in done.stdout.splitlines()), name
    assert any(
        x.split() == ["OTEL_EXPORTER_OTLP_LOGS_HEADERS", "unset"] for x in done.stdout.splitlines()
    )
    # The probe sent the configured credentials, as the exporter would.
    assert traces_only.headers[0]["authorization"] == SECRET_HEADER
    assert [h["Content-Type"] for h in traces_only.headers] == ["application/x-protobuf"] * 2


def test_doctor_passes_on_a_receiver_that_takes_logs(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    done = run(
        "doctor",
        OTEL_PYTHON_FEEDBACK_EXPORTER="otlp,jsonl,console",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(tmp_path / "out.jsonl"),
    )
    assert done.returncode == 0, done.stdout
    assert f"ok   {receiver.http_endpoint}/v1/logs takes OTLP logs (HTTP 200)" in done.stdout
    assert "no problem found" in done.stdout
    assert receiver.logs() == []  # an empty request: nothing recorded


def test_doctor_reports_refused_credentials() -> None:
    server = TracesOnly(logs_status=401)
    try:
        done = run("doctor", OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{server.endpoint}/v1/logs")
    finally:
        server.stop()
    assert done.returncode == 1
    assert "refused the credentials (HTTP 401)" in done.stdout
    assert "OTEL_EXPORTER_OTLP_LOGS_HEADERS" in done.stdout


@pytest.mark.parametrize(
    ("status", "found"),
    [
        (200, "ok   Phoenix at {url} answers its REST API (HTTP 200)"),
        (401, "FAIL Phoenix at {url} refused the API key (HTTP 401)"),
        (404, "FAIL {url} answers HTTP 404 on /v1/projects: not Phoenix's REST API"),
    ],
)
def test_doctor_probes_phoenix_with_its_key(status: int, found: str) -> None:
    server = TracesOnly(get_status=status)
    try:
        done = run(
            "doctor",
            OTEL_PYTHON_FEEDBACK_EXPORTER="phoenix",
            PHOENIX_COLLECTOR_ENDPOINT=server.endpoint,
            PHOENIX_API_KEY=SECRET_PHOENIX,
        )
    finally:
        server.stop()
    assert done.returncode == (0 if status == 200 else 1)
    assert found.format(url=server.endpoint) in done.stdout
    assert server.headers[0]["Authorization"] == f"Bearer {SECRET_PHOENIX}"
    assert SECRET_PHOENIX not in done.stdout + done.stderr


def test_doctor_reports_an_unreachable_endpoint() -> None:
    port = free_port()
    done = run("doctor", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"127.0.0.1:{port} (connection refused)" in done.stdout


def test_doctor_reports_the_wrong_protocol_on_a_port(receiver: OTLPReceiver) -> None:
    http_to_grpc = run("doctor", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint)
    assert http_to_grpc.returncode == 1
    assert "speaks gRPC (HTTP/2), not OTLP/HTTP" in http_to_grpc.stdout
    assert "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=grpc" in http_to_grpc.stdout
    grpc_to_http = run(
        "doctor",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
    )
    assert grpc_to_http.returncode == 1
    assert "speaks HTTP/1.1, not gRPC" in grpc_to_http.stdout
    grpc_ok = run(
        "doctor",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
    )
    assert grpc_ok.returncode == 0, grpc_ok.stdout
    assert "takes OTLP logs over gRPC" in grpc_ok.stdout


# --- token ----------------------------------------------------------------------------------


def test_token_create_then_verify() -> None:
    made = run("token", "create", "--trace-id", TRACE, "--run-id", RUN, "--key", "user_rating",
               OTEL_PYTHON_FEEDBACK_TOKEN_SECRET=SECRET_TOKEN)  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    checked = run("token", "verify", token, OTEL_PYTHON_FEEDBACK_TOKEN_SECRET=SECRET_TOKEN)
    assert checked.returncode == 0, checked.stderr
    assert f"trace_id {TRACE}" in checked.stdout
    assert f"run_id   {RUN}" in checked.stdout
    assert "key      user_rating" in checked.stdout

    other_key = run("token", "verify", token, "--key", "other",
                    OTEL_PYTHON_FEEDBACK_TOKEN_SECRET=SECRET_TOKEN)  # fmt: skip
    assert other_key.returncode == 1
    assert "allows only the key 'user_rating'" in other_key.stderr
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    refused = run("token", "verify", tampered, OTEL_PYTHON_FEEDBACK_TOKEN_SECRET=SECRET_TOKEN)
    assert refused.returncode == 1
    assert "signature does not match" in refused.stderr
    other_secret = run("token", "verify", token, OTEL_PYTHON_FEEDBACK_TOKEN_SECRET="x" * 32)
    assert other_secret.returncode == 1
    for done in (made, checked, refused):
        assert SECRET_TOKEN not in done.stdout + done.stderr


def test_token_without_a_secret_is_a_usage_error() -> None:
    done = run("token", "create", "--trace-id", TRACE)
    assert done.returncode == 2
    assert "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET" in done.stderr


# --- the command itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [[], ["record"], ["import"], ["summary"], ["doctor"], ["token"], ["token", "create"],
     ["token", "verify"]],
)  # fmt: skip
def test_every_subcommand_has_help(args: list[str]) -> None:
    done = run(*args, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: otel-feedback")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("record", "k", "--no-such-option").returncode == 2
    assert run("summary", str(tmp_path / "missing.jsonl")).returncode == 2
    assert run("summary", "--by", "week", str(tmp_path)).returncode == 2
    assert run("nothing-like-this").returncode == 2


@pytest.mark.parametrize("command", ["record", "import", "doctor"])
@pytest.mark.parametrize(("number", "says"), [("nan", "is not a finite number"), ("inf", "")])
def test_a_timeout_that_is_no_finite_number_of_seconds_is_refused(
    command: str, number: str, says: str, tmp_path: Path
) -> None:
    arguments = {
        "record": ["k", "--score", "1", "--trace-id", "0af7651916cd43dd8448eb211c80319c"],
        "import": [str(tmp_path / "none.jsonl")],
        "doctor": [],
    }[command]
    (tmp_path / "none.jsonl").write_text("")
    done = run(command, *arguments, "--timeout", number, OTEL_PYTHON_FEEDBACK_EXPORTER="console")
    assert done.returncode == 2
    assert "Invalid value for '--timeout'" in done.stderr
    assert says in done.stderr
