"""How every HTTP exporter reads an answer that misbehaves, through real sockets on 127.0.0.1.

A cut-off or malformed answer (a chunk cut short, a reset mid-body, a bad chunk length, a
body that does not decode) means "send again later", never a refusal. An error body is read
up to a small bound and the connection closed, so a 256 MiB answer costs a few MiB. A 429
with ``Retry-After`` (seconds or an HTTP-date) is one request and ``RetryLater`` with that
delay. The same for Phoenix, LangSmith, MLflow, Langfuse and OTLP over HTTP.
"""

from __future__ import annotations

import email.utils
import socket
import struct
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    LangfuseFeedbackExporter,
    LangSmithFeedbackExporter,
    MLflowFeedbackExporter,
    OTLPFeedbackExporter,
    PhoenixFeedbackExporter,
)
from otel_feedback._export._http import (
    ERROR_BODY_LIMIT,
    BatchRefusedError,
    JsonHttp,
    retry_after_of,
)
from otel_feedback._export.base import ExportOutcome, PartialFeedbackExport, RetryLater

MiB = 1024 * 1024
HUGE = 256 * MiB
_CHUNK = b"x" * (64 * 1024)  # made once: serving the huge body allocates nothing per write


@dataclass
class Misbehaving:
    """A loopback server whose every answer is ``mode``; it counts requests and bytes sent."""

    mode: str
    status: int = 500
    retry_after: str | None = None
    requests: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    """Body bytes written per request (for ``huge``, until the client stopped reading)."""

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append(f"{self.command} {self.path}")
                self.close_connection = True
                server.sent.append(getattr(self, f"_{server.mode}")())

            def _head(self, *headers: str) -> None:
                # It closes after every answer, and says so, as HTTP/1.1 servers do: a client
                # must not send its next request on a connection the server is closing.
                lines = [
                    f"HTTP/1.1 {server.status} Scripted",
                    *headers,
                    "Connection: close",
                    "",
                    "",
                ]
                self.wfile.write("\r\n".join(lines).encode())

            def _cut(self) -> int:
                # A chunk announced as 4,096 bytes; 100 come, then the connection ends.
                self._head("Transfer-Encoding: chunked")
                self.wfile.write(b"1000\r\n" + b"e" * 100)
                return 100

            def _bad_chunk(self) -> int:
                self._head("Transfer-Encoding: chunked")
                self.wfile.write(b"zz\r\nnot a chunk\r\n0\r\n\r\n")
                return 11

            def _bad_gzip(self) -> int:
                body = b"this is not gzip at all"
                self._head("Content-Encoding: gzip", f"Content-Length: {len(body)}")
                self.wfile.write(body)
                return len(body)

            def _reset(self) -> int:
                self._head("Content-Length: 100000")
                self.wfile.write(b"r" * 1000)
                # Linger 0: closing sends a reset, not an orderly end.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                return 1000

            def _huge(self) -> int:
                self._head(f"Content-Length: {HUGE}")
                sent = 0
                try:
                    while sent < HUGE:
                        self.wfile.write(_CHUNK)
                        sent += len(_CHUNK)
                except OSError:
                    pass  # the client stopped reading and closed: what we wanted to see
                return sent

            def _busy(self) -> int:
                body = b'{"detail": "slow down"}'
                after = [f"Retry-After: {server.retry_after}"] if server.retry_after else []
                self._head(*after, f"Content-Length: {len(body)}")
                self.wfile.write(body)
                return len(body)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False  # closing waits for every answer to end
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Stop, once every handler has finished (its byte count is then in ``sent``)."""
        self.server.shutdown()
        self.server.server_close()


EXPORTERS: dict[str, Callable[[str], FeedbackExporter]] = {
    "phoenix": lambda url: PhoenixFeedbackExporter(endpoint=url, timeout=5),
    "langsmith": lambda url: LangSmithFeedbackExporter(
        endpoint=url, api_key="k", project_id=uuid.UUID(int=1), timeout=5
    ),
    "mlflow": lambda url: MLflowFeedbackExporter(tracking_uri=url, timeout=5),
    "langfuse": lambda url: LangfuseFeedbackExporter(
        base_url=url, public_key="pk", secret_key="sk", timeout=5
    ),
    "otlp": lambda url: OTLPFeedbackExporter(
        protocol="http/protobuf",
        endpoint=f"{url}/v1/logs",
        timeout=5,
        resource=Resource.create({}),
    ),
}


@pytest.fixture(params=list(EXPORTERS))
def make(request: pytest.FixtureRequest) -> Callable[[str], FeedbackExporter]:
    return EXPORTERS[request.param]


def _records(count: int) -> list[Feedback]:
    return [
        Feedback.model_validate(
            {
                "id": uuid.uuid4(),
                "created_at": "2026-01-01T00:00:00Z",
                "modified_at": "2026-01-01T00:00:00Z",
                "key": f"k{i}",
                "score": 1,
                "trace_id": uuid.UUID(int=0xABC << 64 | i + 1),
                "run_id": uuid.UUID(int=0xDEF0 + i),
            }
        )
        for i in range(count)
    ]


@pytest.fixture
def batch() -> list[Feedback]:
    return _records(3)


@contextmanager
def serving(mode: str, **options: Any) -> Iterator[Misbehaving]:
    server = Misbehaving(mode, **options)
    try:
        yield server
    finally:
        server.close()


def _is_retry(outcome: ExportOutcome, batch: list[Feedback]) -> bool:
    """The whole batch is to be sent again (never refused)."""
    if outcome is FeedbackExportResult.RETRY or isinstance(outcome, RetryLater):
        return True
    return (
        isinstance(outcome, PartialFeedbackExport)
        and not outcome.refused
        and {r.id for r in outcome.retry} == {r.id for r in batch}
    )


@pytest.mark.parametrize("mode", ["cut", "reset", "bad_chunk", "bad_gzip"])
def test_a_cut_off_or_malformed_error_answer_means_retry(
    make: Callable[[str], FeedbackExporter], batch: list[Feedback], mode: str
) -> None:
    with serving(mode) as server:
        outcome = make(server.url).export(batch)  # raising would split the batch: no
        assert _is_retry(outcome, batch), outcome
        assert server.requests  # it was answered, badly


@pytest.mark.parametrize("mode", ["cut", "reset"])
def test_a_cut_off_success_answer_is_no_verdict(
    make: Callable[[str], FeedbackExporter], batch: list[Feedback], mode: str
) -> None:
    # A 200 whose body does not arrive whole may or may not have been taken: sent again
    # (every store here recognises a record sent twice by its id).
    with serving(mode, status=200) as server:
        assert _is_retry(make(server.url).export(batch), batch)


def test_a_huge_error_body_is_read_only_up_to_a_bound(
    make: Callable[[str], FeedbackExporter], batch: list[Feedback]
) -> None:
    with serving("huge") as server:
        exporter = make(server.url)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            outcome = exporter.export(batch)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert _is_retry(outcome, batch), outcome
    # Once closed, every answer is over: the client closed the connection early.
    print(f"\n{type(exporter).__name__}: peak {peak / MiB:.1f} MiB, sent {_mib(server.sent)}")
    assert peak < 8 * MiB
    assert server.sent
    assert all(sent < 32 * MiB for sent in server.sent)


def _mib(counts: list[int]) -> str:
    return " + ".join(f"{count / MiB:.1f} MiB" for count in counts)


def test_retry_after_in_seconds_is_one_request_and_that_wait(
    make: Callable[[str], FeedbackExporter], batch: list[Feedback]
) -> None:
    with serving("busy", status=429, retry_after="30") as server:
        assert make(server.url).export(batch) == RetryLater(after_s=30.0)
        assert len(server.requests) == 1


def test_retry_after_as_a_date_is_one_request_and_the_wait_until_then(
    make: Callable[[str], FeedbackExporter], batch: list[Feedback]
) -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    with serving("busy", status=429, retry_after=date) as server:
        outcome = make(server.url).export(batch)
        assert isinstance(outcome, RetryLater)
        # The date has a resolution of one second, and a little time passes on the way.
        assert 27.5 <= outcome.after_s <= 30.5
        assert len(server.requests) == 1


@pytest.mark.parametrize("retry_after", [None, "soon", "Someday, 99 Foo 2026"])
def test_busy_without_a_readable_retry_after_is_a_plain_retry(
    make: Callable[[str], FeedbackExporter], batch: list[Feedback], retry_after: str | None
) -> None:
    with serving("busy", status=429, retry_after=retry_after) as server:
        assert make(server.url).export(batch) is FeedbackExportResult.RETRY
        assert len(server.requests) == 1


def test_otlp_makes_one_request_against_a_503_that_says_when() -> None:
    with serving("busy", status=503, retry_after="2") as server:
        # The SDK exporter alone would wait 2 s and ask again within its 5 s timeout.
        assert EXPORTERS["otlp"](server.url).export(_records(2)) == RetryLater(after_s=2.0)
        assert len(server.requests) == 1


def test_otlp_413_hands_the_halving_to_the_engine() -> None:
    with serving("busy", status=413) as server:
        exporter = EXPORTERS["otlp"](server.url)
        with pytest.raises(BatchRefusedError, match="HTTP 413"):
            exporter.export(_records(2))
        result = exporter.export(_records(1))  # alone, it is refused with the status
        assert isinstance(result, PartialFeedbackExport)
        assert [reason for _, reason in result.refused] == ["the endpoint answered HTTP 413"]


def test_phoenix_hands_the_halving_to_the_engine_and_refuses_one_with_its_reason() -> None:
    with serving("busy", status=400) as server:
        exporter = EXPORTERS["phoenix"](server.url)
        with pytest.raises(BatchRefusedError, match="HTTP 400: slow down"):
            exporter.export(_records(3))
        result = exporter.export(_records(1))
        assert isinstance(result, PartialFeedbackExport)
        assert [reason for _, reason in result.refused] == ["Phoenix answered HTTP 400: slow down"]
        assert len(server.requests) == 2  # one per export: no halving of its own


def test_phoenix_refuses_an_endpoint_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="PHOENIX_COLLECTOR_ENDPOINT"):
        PhoenixFeedbackExporter(endpoint="localhost:6006")


def test_the_client_says_a_cut_off_answer_is_no_answer() -> None:
    with serving("reset") as server:
        reply = JsonHttp(server.url, vendor="V", headers={}, timeout=5).request("GET", "/")
        assert reply.status == 0
        assert reply.transient
        assert "HTTP 500 cut off mid-body" in reply.text


def test_the_client_keeps_the_first_bytes_of_an_error_body() -> None:
    with serving("huge") as server:
        reply = JsonHttp(server.url, vendor="V", headers={}, timeout=5).request("GET", "/")
        assert reply.status == 500
        assert len(reply.text) == ERROR_BODY_LIMIT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:28:30 -0000", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # past: at once
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2026 07:28:00 GMT").timestamp()
    assert retry_after_of(value, now=now) == seconds
