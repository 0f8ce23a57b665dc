"""The feedback endpoint under real servers on 127.0.0.1: uvicorn (ASGI) and waitress (WSGI).

Each status, limit and protection of docs/web.md, asserted over real HTTP. The servers run in
this process, so the records are read from an in-memory exporter after a flush.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

import pytest

from otel_feedback import create_feedback_token
from otel_feedback.web import asgi_app, wsgi_app
from tests.conftest import Pipeline

# The servers are test tools, not dependencies: absent (the lowest-versions run), skipped.
pytest.importorskip("uvicorn")
pytest.importorskip("waitress")

SECRET = "a web endpoint secret, 32 bytes!"
TRACE = 0x5B8EFFF798038103D269B633813FC60C
SPAN = 0xEEE19B7EC3C1B174
ALLOWED = "http://app.example:8080"


# --- real servers -------------------------------------------------------------------------


@contextmanager
def serve_asgi(app: Any, *, lifespan: Literal["on", "off"] = "off") -> Iterator[int]:
    """``app`` under uvicorn on an ephemeral port of 127.0.0.1, in a thread; yields the port."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    ready = threading.Event()
    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        ready.set()

    server.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert ready.wait(30), "uvicorn did not start"
    assert server.started
    port: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive()


@contextmanager
def serve_wsgi(app: Any, **adjustments: Any) -> Iterator[int]:
    """``app`` under waitress on an ephemeral port of 127.0.0.1, in a thread; yields the port."""
    import waitress.server

    settings = {"threads": 4, "clear_untrusted_proxy_headers": True, **adjustments}
    created = waitress.server.create_server(app, host="127.0.0.1", port=0, **settings)
    assert isinstance(created, waitress.server.TcpWSGIServer)
    server: Any = created  # its socket map is not in the stubs
    port = int(created.getsockname()[1])
    stopping = threading.Event()

    def run() -> None:
        # waitress's own run() loops until interrupted; this loop stops when asked and
        # closes everything in its own thread, never under a select() in progress.
        from waitress import wasyncore

        while not stopping.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stopping.set()
        thread.join(30)


Serve = Callable[..., Any]


def _asgi_server(**options: Any) -> Any:
    return serve_asgi(asgi_app(**{"secret": SECRET, **options}))


def _wsgi_server(**options: Any) -> Any:
    return serve_wsgi(wsgi_app(**{"secret": SECRET, **options}))


@pytest.fixture(params=["asgi", "wsgi"])
def serve(request: pytest.FixtureRequest) -> Serve:
    """Starts the endpoint with some options under uvicorn or waitress."""
    return _asgi_server if request.param == "asgi" else _wsgi_server


# --- a small HTTP client ------------------------------------------------------------------


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = response.read()

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def request(
    port: int,
    method: str,
    path: str = "/",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        return Reply(connection.getresponse())
    finally:
        connection.close()


def post(port: int, payload: object, **headers: str) -> Reply:
    merged = {"Content-Type": "application/json", **headers}
    return request(port, "POST", "/", json.dumps(payload).encode(), merged)


def token(**options: Any) -> str:
    made: str = create_feedback_token(
        trace_id=TRACE, run_id=SPAN, secret=SECRET, **{"key": "user_rating", **options}
    )
    return made


def raw_exchange(port: int, head: bytes, *, then_read: bool = True) -> tuple[bytes, bytes]:
    """Send ``head`` only; return the answer and what follows it (b"": the server closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = client.recv(65536)
            if not chunk:
                return answer, b""
            answer += chunk
        rest = b""
        if then_read:
            while chunk := client.recv(65536):
                rest += chunk
        return answer, rest


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# --- the tests ----------------------------------------------------------------------------


def test_feedback_is_recorded_on_the_tokens_run(serve: Serve, global_pipeline: Pipeline) -> None:
    with serve() as port:
        reply = post(port, {"token": token(), "score": 0, "comment": "wrong year"})
    assert reply.status == 201
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["cache-control"] == "no-store"
    global_pipeline.flush()
    (record,) = global_pipeline.feedback.get_finished_feedback()
    assert str(record.id) == reply.json()["id"]
    assert record.run_id == uuid.UUID(int=SPAN)
    assert record.trace_id == uuid.UUID(int=TRACE)
    assert record.key == "user_rating"
    assert record.score == 0
    assert record.comment == "wrong year"
    assert record.feedback_source is not None
    assert record.feedback_source.type == "app"


def test_every_submission_is_exported_under_the_tokens_id_up_to_the_bound(
    serve: Serve, global_pipeline: Pipeline
) -> None:
    one = token()
    with serve(max_updates_per_token=4) as port:
        first = post(port, {"token": one, "score": 0})
        # A double click: exported again under the same id, which receivers upsert.
        again = post(port, {"token": one, "score": 0})
        changed = post(port, {"token": one, "score": 1, "comment": "on second thought"})
        back = post(port, {"token": one, "score": 0})
        refused = post(port, {"token": one, "score": 1})
    ids = {first.json()["id"], again.json()["id"], changed.json()["id"], back.json()["id"]}
    assert len(ids) == 1
    assert [r.status for r in [first, again, changed, back]] == [201] * 4
    assert refused.status == 429
    assert refused.json() == {"error": "token: too many updates with this token", "field": "token"}
    global_pipeline.flush()
    records = global_pipeline.feedback.get_finished_feedback()
    assert [(r.score, r.comment) for r in records] == [
        (0, None),
        (0, None),
        (1, "on second thought"),
        (0, None),
    ]
    assert {str(r.id) for r in records} == ids


def test_with_two_workers_a_rating_changed_back_is_exported(global_pipeline: Pipeline) -> None:
    # Two apps are two worker processes: each has its own memory of the token. The user
    # rates 0 (worker A), changes to 1 (worker B), and back to 0 (worker A again).
    one = token()
    with _asgi_server() as worker_a, _wsgi_server() as worker_b:
        answers = [
            post(worker_a, {"token": one, "score": 0}),
            post(worker_b, {"token": one, "score": 1}),
            post(worker_a, {"token": one, "score": 0}),
        ]
    assert [a.status for a in answers] == [201, 201, 201]
    global_pipeline.flush()
    records = global_pipeline.feedback.get_finished_feedback()
    assert [r.score for r in records] == [0, 1, 0]  # the last one exported is the user's
    assert len({r.id for r in records}) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"token": "TOKEN", "score": "ninety-nine-SECRETVALUE"}, "score"),
        ({"token": "TOKEN", "score": 1, "comment": ["SECRETVALUE"]}, "comment"),
        ({"token": "TOKEN", "score": 1, "value": ["SECRETVALUE"]}, "value"),
        ({"token": "TOKEN", "correction": 12345.678}, "correction"),
        ({"token": "TOKEN", "SECRETVALUE": 1}, "body"),
        ({"token": 12345}, "token"),
        (["SECRETVALUE"], "body"),
        ("SECRETVALUE", "body"),
    ],
)
def test_bad_values_are_400_naming_the_field_without_echoing_them(
    serve: Serve, global_pipeline: Pipeline, payload: Any, field: str
) -> None:
    valid = token()
    text = json.dumps(payload).replace("TOKEN", valid)
    with serve() as port:
        reply = request(port, "POST", "/", text.encode(), {"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.json()["field"] == field
    assert reply.json()["error"].startswith(f"{field}: ")
    for secret_part in ("SECRETVALUE", "12345", "ninety", valid):
        assert secret_part.encode() not in reply.body
    global_pipeline.flush()
    assert global_pipeline.feedback.get_finished_feedback() == ()


@pytest.mark.parametrize(
    "body", [b"{not json", b"\xff\xfe{}", b'{"token": "\xc3"}', b"[" * 5000 + b"]" * 5000]
)
def test_a_body_that_is_not_json_is_400_and_not_echoed(serve: Serve, body: bytes) -> None:
    with serve() as port:
        reply = request(port, "POST", "/", body, {"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.json()["field"] == "body"
    assert b"not json" not in reply.body


def test_a_body_nested_100000_deep_is_refused(serve: Serve) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with serve() as port:
        over_the_limit = request(port, "POST", "/", deep, {"Content-Type": "application/json"})
    with serve(max_body_bytes=1 << 20) as port:
        within_the_limit = request(port, "POST", "/", deep, {"Content-Type": "application/json"})
    assert over_the_limit.status == 413
    assert within_the_limit.status == 400
    assert within_the_limit.json() == {"error": "body: nested too deeply", "field": "body"}


@pytest.mark.parametrize("field", ["value", "correction"])
def test_values_nested_deeper_than_32_levels_are_400(
    serve: Serve, global_pipeline: Pipeline, field: str
) -> None:
    def nested(levels: int) -> dict[str, Any]:
        made: dict[str, Any] = {"leaf": 1}
        for _ in range(levels - 1):
            made = {"a": made}
        return made

    with serve() as port:
        deepest = post(port, {"token": token(), field: nested(32)})
        deeper = post(port, {"token": token(key="k2"), field: nested(33)})
    assert deepest.status == 201
    assert deeper.status == 400
    assert deeper.json() == {"error": f"{field}: nested deeper than 32 levels", "field": field}
    global_pipeline.flush()
    assert len(global_pipeline.feedback.get_finished_feedback()) == 1


def test_bad_tokens_are_403(serve: Serve, global_pipeline: Pipeline) -> None:
    good = token()
    forged = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    other_secret = create_feedback_token(
        trace_id=TRACE, run_id=SPAN, key="user_rating", secret="another secret of 16+ bytes"
    )
    other_key = token(key="correctness")
    cases = {"forged": forged, "other secret": other_secret, "garbage": "x" * 80}
    with serve(key="user_rating") as port:
        replies = {name: post(port, {"token": t, "score": 1}) for name, t in cases.items()}
        replies["other key"] = post(port, {"token": other_key, "score": 1})
        replies["missing"] = post(port, {"score": 1})
    assert replies.pop("missing").status == 400
    for name, reply in replies.items():
        assert reply.status == 403, name
        assert reply.json()["field"] == "token"
        for sent in (*cases.values(), other_key):
            assert sent.encode() not in reply.body
    global_pipeline.flush()
    assert global_pipeline.feedback.get_finished_feedback() == ()


def test_an_expired_token_is_403(
    serve: Serve, global_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_feedback._recording import tokens

    monkeypatch.setattr(tokens, "_now", lambda: 1_000_000.0)
    old = token(expires_in=timedelta(seconds=5))
    monkeypatch.setattr(tokens, "_now", lambda: 1_000_005.0)
    with serve() as port:
        reply = post(port, {"token": old, "score": 1})
    assert reply.status == 403
    assert reply.json()["field"] == "token"


def test_another_origin_is_403_without_cors_headers_and_an_allowed_one_may_post(
    serve: Serve, global_pipeline: Pipeline
) -> None:
    preflight = {
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with serve(allowed_origins=[ALLOWED]) as port:
        evil = post(port, {"token": token(), "score": 1}, Origin="http://evil.example")
        evil_preflight = request(port, "OPTIONS", "/", headers=preflight)
        null = post(port, {"token": token(), "score": 1}, Origin="null")
        same = post(port, {"token": token(), "score": 1}, Origin=f"http://127.0.0.1:{port}")
        good_preflight = request(port, "OPTIONS", "/", headers={**preflight, "Origin": ALLOWED})
        allowed = post(port, {"token": token(key="k2"), "score": 1}, Origin=ALLOWED)
    for refused in (evil, evil_preflight, null):
        assert refused.status == 403
        assert refused.json()["field"] == "origin"
        assert "access-control-allow-origin" not in refused.headers
    assert same.status == 201
    assert "access-control-allow-origin" not in same.headers  # same origin needs none
    assert good_preflight.status == 204
    assert good_preflight.headers["access-control-allow-origin"] == ALLOWED
    assert good_preflight.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert good_preflight.headers["access-control-allow-headers"] == "content-type"
    assert allowed.status == 201
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert allowed.headers["vary"] == "Origin"
    global_pipeline.flush()
    assert len(global_pipeline.feedback.get_finished_feedback()) == 2


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_a_content_type_other_than_json_is_415(
    serve: Serve, global_pipeline: Pipeline, content_type: str
) -> None:
    body = json.dumps({"token": token(), "score": 1}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    with serve() as port:
        reply = request(port, "POST", "/", body, headers)
        # The cross-site form post of the issue: refused for its Origin before its type.
        cross_site = request(port, "POST", "/", body, {**headers, "Origin": "http://evil.example"})
    assert reply.status == 415
    assert reply.json()["field"] == "content-type"
    assert cross_site.status == 403
    global_pipeline.flush()
    assert global_pipeline.feedback.get_finished_feedback() == ()


def test_json_with_a_utf8_charset_is_taken(serve: Serve, global_pipeline: Pipeline) -> None:
    body = json.dumps({"token": token(), "score": 1}).encode()
    with serve() as port:
        reply = request(
            port, "POST", "/", body, {"Content-Type": 'application/json; charset="UTF-8"'}
        )
        latin = request(
            port, "POST", "/", body, {"Content-Type": "application/json; charset=latin-1"}
        )
    assert reply.status == 201
    assert latin.status == 415


def test_a_256_mib_body_is_refused_from_its_content_length_before_it_is_sent() -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 268435456\r\n\r\n"
    )
    # The answer arrives though not one byte of the body was sent: it was not waited for.
    with _asgi_server() as port:
        asgi_answer, asgi_rest = raw_exchange(port, head)
    # Under waitress the server itself checks Content-Length against its own limit, so the
    # app's limit and the server's are set alike (docs/web.md).
    with serve_wsgi(wsgi_app(secret=SECRET), max_request_body_size=16 * 1024) as port:
        wsgi_answer, _ = raw_exchange(port, head)
    assert status_of(asgi_answer) == 413
    assert b"connection: close" in asgi_answer.lower()
    assert b'"field": "body"' in asgi_rest or b'"field": "body"' in asgi_answer
    assert status_of(wsgi_answer) == 413


def test_the_wsgi_app_checks_content_length_before_reading() -> None:
    # Here the server takes bodies up to 1 MiB and the app 16 KiB: the app's own answer.
    body = b'{"token": "' + b"x" * 100_000 + b'"}'
    with serve_wsgi(wsgi_app(secret=SECRET), max_request_body_size=1 << 20) as port:
        reply = request(port, "POST", "/", body, {"Content-Type": "application/json"})
    assert reply.status == 413
    assert reply.json() == {"error": "body: larger than 16384 bytes", "field": "body"}


def test_a_chunked_body_over_the_limit_is_cut_off_while_reading(serve: Serve) -> None:
    chunk = b"x" * 4096
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    with serve() as port:
        answer, _ = raw_exchange(port, head + chunks)
    assert status_of(answer) == 413


@pytest.mark.parametrize("length", [b"-1", b"abc", b"1e3", b"+5"])
def test_a_bad_content_length_is_400(serve: Serve, length: bytes) -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + length + b"\r\n\r\n"
    )
    with serve() as port:
        answer, _ = raw_exchange(port, head)
    # Refused by the server's parser or by the endpoint; either way at once and closed.
    assert status_of(answer) == 400


def test_a_post_without_content_length_is_411(serve: Serve) -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\n\r\n"
    )
    with serve() as port:
        answer, _ = raw_exchange(port, head)
    # HTTP/1.1 without a length is an empty body to these servers: 400 (not JSON) or 411.
    assert status_of(answer) in (400, 411)


def test_a_slow_client_is_answered_408_and_the_worker_freed_after_the_timeout() -> None:
    psutil = pytest.importorskip("psutil")
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    with _asgi_server(body_timeout_s=0.5) as port:
        clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(20)]
        for client in clients:
            client.sendall(head + b'{"tok')  # and never the rest
        answers = []
        for client in clients:
            received = b""
            while chunk := client.recv(65536):  # until the server closes the connection
                received += chunk
            answers.append(received)
        # The server's side of each connection is closed (not ESTABLISHED any more).
        held = [
            c
            for c in psutil.Process().net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
        ]
        for client in clients:
            client.close()
        # And the server still serves.
        served = post(port, {"token": "x" * 80, "score": 1})
    assert [status_of(a) for a in answers] == [408] * 20
    assert all(b'"field": "body"' in a for a in answers)
    assert held == []
    assert served.status == 403


def test_under_waitress_a_slow_client_never_reaches_a_worker_thread() -> None:
    calls: list[str] = []
    endpoint = wsgi_app(secret=SECRET)

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return endpoint(environ, start_response)

    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    threads_before = threading.active_count()
    # waitress reads bodies in its I/O loop and hands complete requests to its 4 threads;
    # channel_timeout closes a connection that sends nothing more.
    with serve_wsgi(counted, channel_timeout=1, cleanup_interval=1) as port:
        threads_serving = threading.active_count()
        clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(20)]
        for client in clients:
            client.sendall(head + b'{"tok')
        closed = []
        for client in clients:
            closed.append(client.recv(65536))  # b"": closed by the server
            client.close()
        served = post(port, {"token": "x" * 80, "score": 1})
        threads_after = threading.active_count()
    assert closed == [b""] * 20
    assert calls == ["/"]  # only the last, complete request reached the application
    assert served.status == 403
    assert threads_after == threads_serving
    assert threads_serving > threads_before


def test_the_module_is_served_with_caching_headers(serve: Serve) -> None:
    with serve() as port:
        script = request(port, "GET", "/feedback.js")
        again = request(
            port, "GET", "/feedback.js", headers={"If-None-Match": script.headers["etag"]}
        )
        head = request(port, "HEAD", "/feedback.js")
        wrong = request(port, "POST", "/feedback.js")
    assert script.status == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "public, max-age=3600"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert script.headers["etag"].startswith('"')
    assert b"export async function sendFeedback" in script.body
    assert b'customElements.define("otel-feedback"' in script.body
    assert again.status == 304
    assert again.body == b""
    assert again.headers["etag"] == script.headers["etag"]
    assert head.status == 200
    assert head.body == b""
    assert wrong.status == 405
    assert wrong.headers["allow"] == "GET, HEAD"


def test_other_paths_and_methods(serve: Serve) -> None:
    with serve() as port:
        missing = request(port, "GET", "/nothing-here")
        get = request(port, "GET", "/")
    assert missing.status == 404
    assert get.status == 405
    assert get.headers["allow"] == "POST, OPTIONS"


def test_without_a_secret_the_server_answers_500_naming_the_setting(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", raising=False)
    with serve(secret=None) as port:
        reply = post(port, {"token": token(), "score": 1})
    assert reply.status == 500
    assert reply.json()["field"] == "secret"


def test_mounted_in_fastapi_and_in_flask(global_pipeline: Pipeline) -> None:
    from fastapi import FastAPI
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    fastapi_app = FastAPI()
    fastapi_app.mount("/feedback", asgi_app(secret=SECRET))
    flask_app = Flask("tests")
    flask_app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        flask_app.wsgi_app, {"/feedback": wsgi_app(secret=SECRET)}
    )
    replies: list[Reply] = []
    for server in (serve_asgi(fastapi_app), serve_wsgi(flask_app)):
        with server as port:
            replies.append(
                request(
                    port,
                    "POST",
                    "/feedback/",  # Starlette redirects /feedback to it
                    json.dumps({"token": token(key=f"k{len(replies)}"), "score": 1}).encode(),
                    {"Content-Type": "application/json"},
                )
            )
            replies.append(request(port, "GET", "/feedback/feedback.js"))
    assert [r.status for r in replies] == [201, 200, 201, 200]
    global_pipeline.flush()
    assert len(global_pipeline.feedback.get_finished_feedback()) == 2


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"allowed_origins": "https://app.example"}, "allowed_origins"),
        ({"allowed_origins": ["app.example"]}, "allowed_origins"),
        ({"allowed_origins": ["https://app.example/path"]}, "allowed_origins"),
        ({"allowed_origins": ["https://app.example?q"]}, "allowed_origins"),
        ({"allowed_origins": ["https://*.example.com"]}, "allowed_origins"),
        ({"allowed_origins": ["*.example.com"]}, "allowed_origins"),
        ({"allowed_origins": ["ftp://app.example"]}, "allowed_origins"),
        ({"allowed_origins": ["chrome-extension://abcdef"]}, "allowed_origins"),
        ({"allowed_origins": ["https://app.example:99999"]}, "allowed_origins"),
        ({"keys": "user_rating"}, "keys"),
        ({"keys": []}, "keys"),
        ({"keys": [""]}, "keys"),
        ({"keys": ["a"], "key": "b"}, "keys"),
        ({"trust_forwarded_headers": "yes"}, "trust_forwarded_headers"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_body_bytes": True}, "max_body_bytes"),
        ({"body_timeout_s": 0}, "body_timeout_s"),
        ({"max_updates_per_token": -1}, "max_updates_per_token"),
        ({"key": ""}, "key"),
    ],
)
def test_bad_options_are_refused_at_once(options: dict[str, Any], name: str) -> None:
    for make in (asgi_app, wsgi_app):
        with pytest.raises(ValueError, match=f"^{name}: "):
            make(**options)


def test_importing_the_package_or_the_endpoint_loads_no_web_framework() -> None:
    code = (
        "import sys, otel_feedback\n"
        "assert 'otel_feedback.web' not in sys.modules\n"
        "import otel_feedback.web\n"
        "loaded = {'fastapi', 'starlette', 'flask', 'werkzeug', 'django', 'uvicorn', 'waitress'}"
        " & set(sys.modules)\n"
        "print(sorted(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_module_ships_inside_the_package() -> None:
    from importlib.resources import files

    shipped = files("otel_feedback.web").joinpath("feedback.js").read_text()
    assert "export class OtelFeedback extends HTMLElement" in shipped


@pytest.mark.parametrize("secret", ["short", " " * 20])
def test_a_bad_secret_is_refused_at_start_up(secret: str) -> None:
    for make in (asgi_app, wsgi_app):
        with pytest.raises(ValueError, match=r"^secret: "):
            make(secret=secret)


def test_without_a_secret_a_warning_says_which_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", raising=False)
    asgi_app()
    assert "set OTEL_PYTHON_FEEDBACK_TOKEN_SECRET" in caplog.text


def test_past_max_tracked_tokens_the_least_recently_used_is_forgotten(
    global_pipeline: Pipeline,
) -> None:
    first, second, third = (token(key=f"k{i}") for i in range(3))
    with _asgi_server(max_tracked_tokens=2, max_updates_per_token=2) as port:
        for each in (first, second, first, third):  # third pushes out second, not first
            assert post(port, {"token": each, "score": 1}).status == 201
        assert post(port, {"token": first, "score": 1}).status == 429  # remembered: 2 made
        assert post(port, {"token": second, "score": 1}).status == 201  # forgotten: counts anew
    global_pipeline.flush()
    keys = [r.key for r in global_pipeline.feedback.get_finished_feedback()]
    assert keys == ["k0", "k1", "k0", "k2", "k1"]


def test_uvicorn_alone_runs_the_lifespan_and_refuses_websockets() -> None:
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    # Started means lifespan.startup was answered; serve_asgi checks that the server
    # stopped, which needs lifespan.shutdown answered.
    with serve_asgi(asgi_app(secret=SECRET), lifespan="on") as port:
        answer, _ = raw_exchange(port, upgrade)
        script = request(port, "GET", "/feedback.js")
    assert status_of(answer) != 101
    assert script.status == 200


# --- the endpoint's set-up: processor, secret, proxies, origins, keys ----------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


FRESH_APP = """
import sys
from otel_feedback.web import asgi_app, wsgi_app

app = (asgi_app if sys.argv[-1] == "asgi" else wsgi_app)(secret={secret!r}, keys=["user_rating"])
"""


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("sdk_disabled", [False, True])
def test_in_an_app_with_no_feedback_processor_the_endpoint_answers_503_and_says_why(
    tmp_path: Any, kind: str, sdk_disabled: bool
) -> None:
    from tests.server_process import ServerProcess

    # The README's lines in a fresh app, without otel_feedback.configure(): a server
    # process of its own, where nothing set up a FeedbackSpanProcessor.
    (tmp_path / "fresh_app.py").write_text(FRESH_APP.format(secret=SECRET))
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    if sdk_disabled:
        environment["OTEL_SDK_DISABLED"] = "true"
    serve_code = (
        "import sys, fresh_app, uvicorn, waitress\n"
        "if sys.argv[-1] == 'asgi':\n"
        f"    uvicorn.run(fresh_app.app, host='127.0.0.1', port={port}, log_level='warning')\n"
        "else:\n"
        f"    waitress.serve(fresh_app.app, host='127.0.0.1', port={port})\n"
    )
    server = ServerProcess(
        [sys.executable, "-c", serve_code, kind],
        port=port,
        log=tmp_path / "server.log",
        environment=environment,
        health_path="/feedback.js",
    )
    try:
        replies = [post(port, {"token": token(), "score": 0}) for _ in range(2)]
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    if sdk_disabled:  # recording is off by choice: taken, and nothing is recorded
        assert [(r.status, r.json()) for r in replies] == [(201, {"id": None})] * 2
        assert "503" not in log
        return
    assert [(r.status, r.json()) for r in replies] == [
        (503, {"error": "feedback: not set up on this server", "field": "feedback"})
    ] * 2
    assert log.count("call otel_feedback.configure()") == 1
    assert "add a FeedbackSpanProcessor" in log
    assert token() not in log


@pytest.mark.parametrize(
    ("value", "reason"),
    [("shortSECRET", "too short"), (" \t " * 8, "blank"), ("\n" * 20, "blank")],
)
def test_an_unusable_secret_variable_is_reported_at_creation_and_at_the_first_500(
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    value: str,
    reason: str,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", value)
    with caplog.at_level("WARNING", logger="otel_feedback"), serve(secret=None) as port:
        at_creation = caplog.text
        replies = [post(port, {"token": token(), "score": 1}) for _ in range(3)]
    assert [r.status for r in replies] == [500] * 3
    assert replies[0].json() == {
        "error": "secret: the server has no usable token secret",
        "field": "secret",
    }
    assert "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET is not a usable token secret" in at_creation
    assert reason in at_creation
    after = caplog.text[len(at_creation) :]
    assert after.count("feedback POSTs answer 500: OTEL_PYTHON_FEEDBACK_TOKEN_SECRET") == 1
    assert reason in after
    if value.strip():
        assert value not in caplog.text


def test_behind_a_proxy_that_rewrites_host_the_site_may_post_when_listed_or_trusted(
    global_pipeline: Pipeline,
) -> None:
    # nginx's default: Host is the upstream's name; X-Forwarded-* say what the browser saw.
    behind = {
        "Host": "feedback_upstream",
        "Origin": "https://app.example",
        "X-Forwarded-Host": "app.example",
        "X-Forwarded-Proto": "https",
    }
    forged = {**behind, "X-Forwarded-Host": "elsewhere.example"}
    statuses: dict[str, list[int]] = {}
    servers: dict[str, Serve] = {
        "asgi": _asgi_server,
        # waitress keeps X-Forwarded-* only when told to; with trusted_proxy it rewrites
        # Host itself (docs/web.md).
        "wsgi": lambda **o: serve_wsgi(
            wsgi_app(secret=SECRET, **o), clear_untrusted_proxy_headers=False
        ),
    }
    for kind, server in servers.items():
        with server() as port:
            refused = post(port, {"token": token(), "score": 1}, **behind)
        with server(trust_forwarded_headers=True) as port:
            trusted = post(port, {"token": token(key="k1"), "score": 1}, **behind)
            other_host = post(port, {"token": token(key="k2"), "score": 1}, **forged)
        with server(allowed_origins=["https://app.example:443"]) as port:
            listed = post(port, {"token": token(key="k3"), "score": 1}, **behind)
        statuses[kind] = [r.status for r in (refused, trusted, other_host, listed)]
        assert refused.json()["field"] == "origin"
    assert statuses == {"asgi": [403, 201, 403, 201], "wsgi": [403, 201, 403, 201]}


def test_allowed_origins_drop_default_ports_and_star_allows_every_origin(
    global_pipeline: Pipeline,
) -> None:
    with _asgi_server(allowed_origins=["HTTPS://App.Example:443", "http://b.example:80/"]) as port:
        https = post(port, {"token": token(key="k1"), "score": 1}, Origin="https://app.example")
        http = post(port, {"token": token(key="k2"), "score": 1}, Origin="http://b.example")
    with _asgi_server(allowed_origins=["*"]) as port:
        anywhere = post(port, {"token": token(key="k3"), "score": 1}, Origin="http://any.example")
        preflight = request(
            port,
            "OPTIONS",
            "/",
            headers={"Origin": "http://any.example", "Access-Control-Request-Method": "POST"},
        )
    assert (https.status, http.status) == (201, 201)
    assert https.headers["access-control-allow-origin"] == "https://app.example"
    assert anywhere.status == 201
    assert preflight.status == 204
    # "*", never the origin echoed: browsers refuse it for requests with credentials.
    assert anywhere.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in anywhere.headers


def test_an_origin_with_user_info_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match=r"^allowed_origins: .*user info") as refused:
        asgi_app(secret=SECRET, allowed_origins=["https://user:hunter2@app.example"])
    assert "hunter2" not in str(refused.value)
    assert "app.example" in str(refused.value)


def test_with_keys_a_token_for_another_key_is_403(
    serve: Serve, global_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(keys=["user_rating"]) as port:
        rating = post(port, {"token": token(), "score": 1})
        internal = post(port, {"token": token(key="internal_quality"), "score": 1})
        any_key = post(port, {"token": token(key=None), "score": 1})
    assert rating.status == 201
    assert internal.status == 403
    assert internal.json() == {
        "error": "token: does not allow this endpoint's key",
        "field": "token",
    }
    assert any_key.status == 400  # a token for any key needs key= to name one
    assert "no keys= given" not in caplog.text
    global_pipeline.flush()
    assert [r.key for r in global_pipeline.feedback.get_finished_feedback()] == ["user_rating"]


def test_without_keys_a_warning_says_any_key_is_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wsgi_app(secret=SECRET)
    assert "no keys= given: feedback is recorded under any key a valid token names" in caplog.text
    caplog.clear()
    asgi_app(secret=SECRET, key="user_rating")  # one key named: nothing to warn about
    assert caplog.text == ""


GUNICORN_APP = """
from otel_feedback.web import wsgi_app

app = wsgi_app(secret={secret!r}, keys=["user_rating"], body_timeout_s=1)
"""


def test_under_gunicorn_a_slow_client_is_answered_408_and_the_worker_kept(tmp_path: Any) -> None:
    gunicorn = pytest.importorskip("gunicorn")
    from tests.server_process import ServerProcess

    (tmp_path / "slow_app.py").write_text(GUNICORN_APP.format(secret=SECRET))
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    # One sync worker and gunicorn's own timeout far above the endpoint's.
    command = [sys.executable, "-m", "gunicorn", "-w", "1", "--timeout", "60"]
    server = ServerProcess(
        [*command, "-b", f"127.0.0.1:{port}", "slow_app:app"],
        port=port,
        log=tmp_path / "gunicorn.log",
        environment=environment,
        health_path="/feedback.js",
    )
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    try:
        workers_before = [c.pid for c in _children(server.process.pid)]
        answer, _ = raw_exchange(port, head + b'{"tok')  # and never the rest
        served = post(port, {"token": "x" * 80, "score": 1})
        workers_after = [c.pid for c in _children(server.process.pid)]
    finally:
        server.stop()
    assert gunicorn is not None
    assert status_of(answer) == 408
    assert served.status == 403
    assert workers_after == workers_before  # the worker answered; none was killed


def _children(pid: int) -> list[Any]:
    psutil = pytest.importorskip("psutil")
    children: list[Any] = psutil.Process(pid).children()
    return children
