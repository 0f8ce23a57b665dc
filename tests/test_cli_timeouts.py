"""``--timeout`` bounds the whole command against endpoints that are down in every way.

Closed (nothing listens), blackholed (a socket that listens and never accepts, or accepts
and never answers), trickling (a byte every 2 s, so that no socket timeout ever fires), and
a 500 whose body is 512 MiB. Each command must come back by itself, say what happened, and
read no more of an answer than it needs. ``benchmarks/cli_timeouts.py`` prints the wall
times; here the bound is only a generous limit on the child process (timeout + 3 s).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.test_cli import COMMAND, TRACE
from tests.vendor_standin import closed_url

TIMEOUT_S = 2.0
SLACK_S = 3.0  # generous: a bound on a hang, not a measurement
BODY_BYTES = 512 * 1024 * 1024


class RawServer:
    """A loopback TCP server whose every connection is handled by ``serve(conn, stop)``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.threads: list[threading.Thread] = []
        if mode != "unaccepted":  # the kernel completes the handshake; nobody accepts
            accept = threading.Thread(target=self._accept, daemon=True)
            accept.start()
            self.threads.append(accept)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self.threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.mode == "silent":  # accepts, reads, never answers
                    self.stop.wait()
                elif self.mode == "trickle":
                    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
                    for byte in answer:
                        conn.sendall(bytes([byte]))
                        if self.stop.wait(2.0):
                            return
                elif self.mode == "huge":
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 500 Internal Server Error\r\n"
                        + f"Content-Length: {BODY_BYTES}\r\n\r\n".encode()
                    )
                    chunk = b"x" * (1 << 20)
                    for _ in range(BODY_BYTES // len(chunk)):
                        if self.stop.is_set():
                            return
                        conn.sendall(chunk)
            except OSError:
                return  # the client hung up: what a bounded reader does

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture(params=["unaccepted", "silent", "trickle"])
def dead_endpoint(request: pytest.FixtureRequest) -> Iterator[RawServer]:
    server = RawServer(request.param)
    yield server
    server.close()


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    max_rss_kib: int


def run_bounded(*args: str, limit_s: float = TIMEOUT_S, **env: str) -> Finished:
    """Run the command; fail the test if it is still running at ``limit_s`` + SLACK_S."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    clean.update(env, COLUMNS="200")
    child = subprocess.Popen(
        [str(COMMAND), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean,
        text=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=limit_s + SLACK_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"{args[0]} with a {limit_s:g} s timeout still ran {SLACK_S:g} s later")
    usage: Any = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Finished(child.returncode, stdout, stderr, int(usage.ru_maxrss))


def test_doctor_reports_a_dead_endpoint_within_its_timeout(dead_endpoint: RawServer) -> None:
    done = run_bounded(
        "doctor", "--timeout", str(TIMEOUT_S), OTEL_EXPORTER_OTLP_ENDPOINT=dead_endpoint.url
    )
    assert done.returncode == 1
    assert "FAIL" in done.stdout
    assert any(
        said in done.stdout
        for said in (f"within --timeout {TIMEOUT_S:g} s", "did not answer within")
    ), done.stdout


def test_doctor_reports_each_vendor_that_does_not_answer(dead_endpoint: RawServer) -> None:
    done = run_bounded(
        "doctor", "--timeout", str(TIMEOUT_S),
        OTEL_PYTHON_FEEDBACK_EXPORTER="langsmith,mlflow,langfuse,phoenix",
        LANGSMITH_ENDPOINT=dead_endpoint.url, LANGSMITH_API_KEY="ls-key-0000",
        MLFLOW_TRACKING_URI=dead_endpoint.url,
        LANGFUSE_BASE_URL=dead_endpoint.url, LANGFUSE_PUBLIC_KEY="pk", LANGFUSE_SECRET_KEY="sk00",
        PHOENIX_COLLECTOR_ENDPOINT=dead_endpoint.url,
    )  # fmt: skip
    assert done.returncode == 1
    fails = [x for x in done.stdout.splitlines() if x.startswith("FAIL")]
    assert len(fails) == 4, done.stdout  # one per exporter, all within the one deadline


def test_record_to_a_dead_endpoint_ends_within_its_timeout(dead_endpoint: RawServer) -> None:
    done = run_bounded(
        "record", "k", "--score", "1", "--trace-id", TRACE, "--timeout", str(TIMEOUT_S),
        OTEL_PYTHON_FEEDBACK_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{dead_endpoint.url}/v1/logs",
    )  # fmt: skip
    assert done.returncode == 1
    assert f"not delivered by OTLPFeedbackExporter within {TIMEOUT_S:g} s" in done.stderr
    # It said what it was waiting for before giving up.
    assert "waiting for delivery to OTLP (http/protobuf) at " in done.stderr


def test_record_with_nothing_listening_says_so_and_ends_within_its_timeout() -> None:
    done = run_bounded(
        "record", "k", "--score", "1", "--trace-id", TRACE, "--timeout", str(TIMEOUT_S),
        OTEL_PYTHON_FEEDBACK_EXPORTER="langsmith", LANGSMITH_API_KEY="ls-key-0000",
        LANGSMITH_ENDPOINT=closed_url(),
    )  # fmt: skip
    assert done.returncode == 1
    assert "waiting for delivery to LangSmith at http://127.0.0.1:" in done.stderr
    assert "LangSmithFeedbackExporter has not delivered yet" in done.stderr


def test_import_to_a_dead_endpoint_counts_every_line(dead_endpoint: RawServer) -> None:
    lines = "".join(f'{{"key": "k", "score": {i}, "trace_id": "{TRACE}"}}\n' for i in range(5))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    clean.update(
        OTEL_PYTHON_FEEDBACK_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{dead_endpoint.url}/v1/logs",
    )
    done = subprocess.run(
        [str(COMMAND), "import", "-", "--timeout", str(TIMEOUT_S)],
        input=lines,
        capture_output=True,
        text=True,
        env=clean,
        timeout=TIMEOUT_S + SLACK_S,
        check=False,
    )
    assert done.returncode == 1
    assert "sent 0 of 5 record(s)" in done.stdout
    refused = [x for x in done.stderr.splitlines() if x.startswith("line ")]
    assert len(refused) == 5
    assert all("not delivered by OTLPFeedbackExporter" in x for x in refused)


def test_doctor_reads_a_bounded_part_of_a_huge_answer() -> None:
    server = RawServer("huge")
    try:
        done = run_bounded(
            "doctor", "--timeout", "20", limit_s=20,
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{server.url}/v1/logs",
        )  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 1
    assert "answers HTTP 500 to an empty OTLP logs request" in done.stdout
    # The largest child so far: a doctor that read the body would have passed 512 MiB.
    assert done.max_rss_kib < 256 * 1024
