"""The feedback endpoint attacked as an outsider would, under uvicorn (ASGI) and waitress (WSGI).

    python benchmarks/web_attacks.py [--servers asgi,wsgi] [--slow-clients 300]

Each server runs in a process of its own on 127.0.0.1 (this script, with ``--serve``), its
feedback going to an in-memory exporter whose records it counts when told to stop. Prints,
per server:

- a 256 MiB body: the status, how much of the body the client got to send before the answer,
  and the server process's memory (RSS) before, at most during, and after;
- slow clients that send headers and a few bytes of body, then nothing: the server's threads
  and open connections while they wait, and after its timeout;
- ``Content-Length: -1``, a body nested 100,000 deep (at the default limit and at 1 MiB), a
  cross-origin ``text/plain`` POST: the status of each and how long the answer took;
- 1,000 POSTs with one token, identical, then 1,000 with another token and changing scores:
  the statuses, and the records exported (and their distinct ids). Every accepted submission
  is exported (none is skipped as identical), at most ``max_updates_per_token`` (20) per
  token and process: 20 records per token, then 429.

Timings are what this machine measured: compare them, do not assert them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import psutil

SECRET = "the attacked endpoint's secret!!"
MIB = 1 << 20
BODY_TIMEOUT_S = 5.0  # the endpoint's body timeout, and waitress's channel_timeout
HEAD = (
    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "{extra}Content-Length: {length}\r\n\r\n"
)


# --- the server process -------------------------------------------------------------------


def serve(kind: str, max_body: int) -> None:
    """Serve the endpoint on an ephemeral port; print it; on a line of stdin, stop and count."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter
    from otel_feedback.web import asgi_app, wsgi_app

    provider = TracerProvider()
    exporter = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(exporter)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    options: dict[str, Any] = {
        "secret": SECRET,
        "keys": ["user_rating"],
        "max_body_bytes": max_body,
        "body_timeout_s": BODY_TIMEOUT_S,
    }
    stop: Any
    if kind == "asgi":
        import uvicorn

        config = uvicorn.Config(
            asgi_app(**options), host="127.0.0.1", port=0, log_level="critical", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]

        def stop() -> None:
            server.should_exit = True
            thread.join(30)

    else:
        import waitress.server

        wsgi_server: Any = waitress.server.create_server(
            wsgi_app(**options),
            host="127.0.0.1",
            port=0,
            threads=4,
            # As docs/web.md advises: the server's body limit and idle timeout set alike.
            max_request_body_size=max_body,
            channel_timeout=int(BODY_TIMEOUT_S),
            cleanup_interval=1,
            connection_limit=1000,
        )
        port = wsgi_server.getsockname()[1]
        thread = threading.Thread(target=wsgi_server.run, daemon=True)
        thread.start()

        def stop() -> None:
            wsgi_server.task_dispatcher.shutdown()

    print(port, flush=True)
    sys.stdin.readline()
    processor.force_flush(10_000)
    records = exporter.get_finished_feedback()
    print(json.dumps({"records": len(records), "ids": len({r.id for r in records})}), flush=True)
    stop()
    os._exit(0)  # the waitress loop has no clean stop from another thread


class Server:
    def __init__(self, kind: str, max_body: int = 16 * 1024) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--max-body", str(max_body)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.ps = psutil.Process(self.process.pid)

    def rss_mib(self) -> float:
        rss: int = self.ps.memory_info().rss
        return rss / MIB

    def connections(self) -> int:
        return sum(
            1
            for c in self.ps.net_connections("tcp")
            if c.laddr and c.laddr.port == self.port and c.status == psutil.CONN_ESTABLISHED
        )

    def stop(self) -> dict[str, int]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stop\n")
        self.process.stdin.flush()
        counts: dict[str, int] = json.loads(self.process.stdout.readline())
        self.process.wait(30)
        return counts


# --- the attacks --------------------------------------------------------------------------


def _answer(client: socket.socket) -> tuple[int | None, float]:
    """The status of the answer on ``client`` (None: closed without one) and when it came."""
    received = b""
    while b"\r\n" not in received:
        try:
            chunk = client.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/") else None
    return status, time.perf_counter()


def _drain(client: socket.socket) -> bool:
    try:
        return bool(client.recv(65536))
    except OSError:
        return False


def big_body(server: Server) -> str:
    size = 256 * MIB
    before = server.rss_mib()
    peak = before
    sent = 0
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(HEAD.format(extra="", length=size).encode())
        answered: list[tuple[int | None, float]] = []
        reader = threading.Thread(target=lambda: answered.append(_answer(client)))
        reader.start()
        chunk = b" " * MIB
        client.settimeout(2)
        while sent < size and reader.is_alive():
            try:
                client.sendall(chunk)
            except OSError:  # the server closed: it will read no more
                break
            sent += len(chunk)
            peak = max(peak, server.rss_mib())
        reader.join(30)
    status, when = answered[0] if answered else (None, time.perf_counter())
    after = server.rss_mib()
    return (
        f"256 MiB body: {status} after {when - start:.3f} s; the client sent "
        f"{sent / MIB:.0f} MiB before the answer or the close; server RSS "
        f"{before:.0f} MiB before, {peak:.0f} at most, {after:.0f} after"
    )


def slow_clients(server: Server, count: int) -> str:
    threads_before = server.ps.num_threads()
    clients = []
    head = HEAD.format(extra="", length=100).encode() + b'{"tok'
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        client.sendall(head)
        clients.append(client)
    time.sleep(1)  # let the server take them all in
    threads_during, held_during = server.ps.num_threads(), server.connections()
    start = time.perf_counter()
    answers: Counter[int | None] = Counter()
    for client in clients:
        answers[_answer(client)[0]] += 1
        while _drain(client):  # until the server closes the connection
            pass
    waited = time.perf_counter() - start
    threads_after, held_after = server.ps.num_threads(), server.connections()
    for client in clients:
        client.close()
    return (
        f"{count} slow clients: server threads {threads_before} before, {threads_during} "
        f"while they wait, {threads_after} after; connections held {held_during} while they "
        f"wait, {held_after} after the timeout ({waited + 1:.1f} s); answers "
        + ", ".join(f"{status or 'closed'} x{n}" for status, n in sorted(answers.items(), key=str))
    )


def one_request(server: Server, raw: bytes) -> tuple[int | None, float]:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(raw)
        status, when = _answer(client)
    return status, when - start


def simple_attacks(server: Server, deep_server: Server) -> list[str]:
    lines = []
    status, took = one_request(server, HEAD.format(extra="", length=-1).encode())
    lines.append(f"Content-Length -1: {status} in {took:.3f} s")
    deep = b"[" * 100_000 + b"]" * 100_000
    for name, target in (("default 16 KiB limit", server), ("1 MiB limit", deep_server)):
        raw = HEAD.format(extra="", length=len(deep)).encode() + deep
        status, took = one_request(target, raw)
        lines.append(f"JSON nested 100,000 deep ({name}): {status} in {took:.3f} s")
    body = json.dumps({"token": "x" * 80, "score": 1}).encode()
    raw = (
        HEAD.format(extra="Origin: http://evil.example\r\n", length=len(body))
        .replace("application/json", "text/plain")
        .encode()
        + body
    )
    status, took = one_request(server, raw)
    lines.append(f"cross-origin text/plain POST from http://evil.example: {status}")
    return lines


def one_token(server: Server) -> list[str]:
    import http.client

    from otel_feedback import create_feedback_token

    def fresh_token() -> str:
        made: str = create_feedback_token(
            trace_id=int.from_bytes(os.urandom(16), "big") | 1,
            run_id=int.from_bytes(os.urandom(8), "big") | 1,
            key="user_rating",
            secret=SECRET,
        )
        return made

    lines = []
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for name, changing in (("identical", False), ("changing scores", True)):
        token = fresh_token()
        statuses: Counter[int] = Counter()
        start = time.perf_counter()
        for i in range(1000):
            body = json.dumps({"token": token, "score": i % 2 if changing else 1}).encode()
            connection.request("POST", "/", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
        took = time.perf_counter() - start
        lines.append(
            f"1,000 POSTs with one token, {name}: "
            + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items()))
            + f" in {took:.2f} s"
        )
    connection.close()
    return lines


def attack(kind: str, slow: int) -> None:
    print(f"== {kind} ({'uvicorn' if kind == 'asgi' else 'waitress'}) ==", flush=True)
    server = Server(kind)
    deep_server = Server(kind, max_body=MIB)
    try:
        print(big_body(server), flush=True)
        print(slow_clients(server, slow), flush=True)
        for line in simple_attacks(server, deep_server):
            print(line, flush=True)
        for line in one_token(server):
            print(line, flush=True)
    finally:
        counts = server.stop()
        deep_server.stop()
    print(
        f"records exported by the server: {counts['records']}, "
        f"with {counts['ids']} distinct feedback id(s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", choices=["asgi", "wsgi"], help=argparse.SUPPRESS)
    parser.add_argument("--max-body", type=int, default=16 * 1024, help=argparse.SUPPRESS)
    parser.add_argument("--servers", default="asgi,wsgi")
    parser.add_argument("--slow-clients", type=int, default=300)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.max_body)
        return
    for kind in arguments.servers.split(","):
        attack(kind, arguments.slow_clients)


if __name__ == "__main__":
    main()
