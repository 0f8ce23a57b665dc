"""End users rate answers from a web page: a feedback endpoint and its browser module.

Two adapters over one framework-neutral core, with no framework dependency:
:func:`asgi_app` (uvicorn, Starlette, FastAPI) and :func:`wsgi_app` (Flask, Django,
gunicorn, waitress). Both serve, relative to where they are mounted:

- ``POST /``: ``{"token", "score", "value", "comment", "correction"}`` as JSON; 201 with
  ``{"id": ...}``; the feedback goes to the run the token was minted for.
- ``GET /feedback.js``: the ES module with ``sendFeedback()`` and ``<otel-feedback>``.

FastAPI::

    from otel_feedback.web import asgi_app

    app.mount("/feedback", asgi_app(keys=["user_rating"]))

The statuses, limits and the rules for resubmissions are in docs/web.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from otel_feedback.web._asgi import ASGIApp
from otel_feedback.web._core import Endpoint as _Endpoint
from otel_feedback.web._core import Options
from otel_feedback.web._wsgi import WSGIApp

__all__ = ["ASGIApp", "WSGIApp", "asgi_app", "wsgi_app"]


def asgi_app(
    *,
    secret: str | bytes | None = None,
    fallback_secrets: Sequence[str | bytes] | None = None,
    allowed_origins: Iterable[str] = (),
    key: str | None = None,
    keys: Iterable[str] | None = None,
    trust_forwarded_headers: bool = False,
    max_body_bytes: int = 16 * 1024,
    body_timeout_s: float = 10.0,
    max_updates_per_token: int = 20,
    max_tracked_tokens: int = 100_000,
) -> ASGIApp:
    """The feedback endpoint as an ASGI application.

    Example::

        app = FastAPI()
        app.mount("/feedback", asgi_app(keys=["user_rating"]))

    Args:
        secret: the token secret; default ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET``, read at
            each request (so a rotation needs no restart).
        fallback_secrets: earlier secrets that still verify; default
            ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS``.
        allowed_origins: other origins (``https://host[:port]``, a default port dropped)
            whose pages may post; the app's own origin always may. Others get 403, and no
            CORS headers. ``"*"``: every origin may (the token is the credential).
        key: the feedback key to record for a token that allows any key; a token that
            names another key is then refused (403).
        keys: the keys accepted from tokens that name one (403 for others). Without it
            (and without ``key``), any key a valid token names is recorded, internal ones
            included, and a warning says so at creation.
        trust_forwarded_headers: also take an ``Origin`` that matches
            ``X-Forwarded-Proto``/``X-Forwarded-Host`` as the app's own. Only behind a
            proxy that sets them itself; listing the site in ``allowed_origins`` is
            simpler and needs no trust.
        max_body_bytes: the largest body taken (413 above it), checked against
            ``Content-Length`` before reading and while reading.
        body_timeout_s: the time a client has to send the whole body (408 after it).
        max_updates_per_token: records one token may make in this process, repeats
            included (429 after); N worker processes allow up to N times as many.
        max_tracked_tokens: tokens whose record count is remembered, per process.

    Raises:
        ValueError: an option out of range, or an origin that could never match an
            ``Origin`` header (a wildcard, user info, a path, a scheme other than http(s)).
        FeedbackTokenError: ``secret`` given but too short or blank (a ``ValueError``).
    """
    return ASGIApp(
        _endpoint(
            secret=secret,
            fallback_secrets=fallback_secrets,
            allowed_origins=allowed_origins,
            key=key,
            keys=keys,
            trust_forwarded_headers=trust_forwarded_headers,
            max_body_bytes=max_body_bytes,
            body_timeout_s=body_timeout_s,
            max_updates_per_token=max_updates_per_token,
            max_tracked_tokens=max_tracked_tokens,
        )
    )


def wsgi_app(
    *,
    secret: str | bytes | None = None,
    fallback_secrets: Sequence[str | bytes] | None = None,
    allowed_origins: Iterable[str] = (),
    key: str | None = None,
    keys: Iterable[str] | None = None,
    trust_forwarded_headers: bool = False,
    max_body_bytes: int = 16 * 1024,
    body_timeout_s: float = 10.0,
    max_updates_per_token: int = 20,
    max_tracked_tokens: int = 100_000,
) -> WSGIApp:
    """The feedback endpoint as a WSGI application; the options are :func:`asgi_app`'s.

    ``body_timeout_s`` is not enforced by the application: under WSGI the server reads the
    socket, and its own timeouts (waitress ``channel_timeout``, gunicorn ``timeout``) bound a
    slow client.

    Example::

        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/feedback": wsgi_app()})

    Raises:
        ValueError: as :func:`asgi_app`.
    """
    return WSGIApp(
        _endpoint(
            secret=secret,
            fallback_secrets=fallback_secrets,
            allowed_origins=allowed_origins,
            key=key,
            keys=keys,
            trust_forwarded_headers=trust_forwarded_headers,
            max_body_bytes=max_body_bytes,
            body_timeout_s=body_timeout_s,
            max_updates_per_token=max_updates_per_token,
            max_tracked_tokens=max_tracked_tokens,
        )
    )


def _endpoint(
    *,
    secret: str | bytes | None,
    fallback_secrets: Sequence[str | bytes] | None,
    allowed_origins: Iterable[str],
    key: str | None,
    keys: Iterable[str] | None,
    trust_forwarded_headers: bool,
    max_body_bytes: int,
    body_timeout_s: float,
    max_updates_per_token: int,
    max_tracked_tokens: int,
) -> _Endpoint:
    options = Options.checked(
        secret=secret,
        fallback_secrets=fallback_secrets,
        allowed_origins=allowed_origins,
        key=key,
        keys=keys,
        trust_forwarded_headers=trust_forwarded_headers,
        max_body_bytes=max_body_bytes,
        body_timeout_s=body_timeout_s,
        max_updates_per_token=max_updates_per_token,
        max_tracked_tokens=max_tracked_tokens,
    )
    return _Endpoint(options)
