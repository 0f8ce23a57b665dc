"""End users rate answers from a web page: a feedback endpoint and its browser module.

Two adapters over one framework-neutral core, with no framework dependency:
:func:`asgi_app` (uvicorn, Starlette, FastAPI) and :func:`wsgi_app` (Flask, Django,
gunicorn, waitress). Both serve, relative to where they are mounted:

- ``POST /``: ``{"token", "score", "value", "comment", "correction"}`` as JSON; 201 with
  ``{"id": ...}``; the feedback goes to the run the token was minted for.
- ``GET /feedback.js``: the ES module with ``sendFeedback()`` and ``<otel-feedback>``.

FastAPI::

    from otel_feedback.web import asgi_app

    app.mount("/feedback", asgi_app())

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
    max_body_bytes: int = 16 * 1024,
    body_timeout_s: float = 10.0,
    max_updates_per_token: int = 20,
    max_tracked_tokens: int = 100_000,
) -> ASGIApp:
    """The feedback endpoint as an ASGI application.

    Example::

        app = FastAPI()
        app.mount("/feedback", asgi_app(allowed_origins=["https://app.example"]))

    Args:
        secret: the token secret; default ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET``, read at
            each request (so a rotation needs no restart).
        fallback_secrets: earlier secrets that still verify; default
            ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS``.
        allowed_origins: other origins (``https://host[:port]``) whose pages may post; the
            app's own origin always may. Others get 403, and no CORS headers.
        key: the feedback key to record; default the token's own (a token that allows any
            key then needs this).
        max_body_bytes: the largest body taken (413 above it), checked against
            ``Content-Length`` before reading and while reading.
        body_timeout_s: the time a client has to send the whole body (408 after it).
        max_updates_per_token: records one token may make, changes included (429 after).
        max_tracked_tokens: tokens whose last submission is remembered, per process.

    Raises:
        ValueError: an option out of range, or an origin that is not ``scheme://host``.
        FeedbackTokenError: ``secret`` given but too short or blank (a ``ValueError``).
    """
    return ASGIApp(
        _endpoint(
            secret=secret,
            fallback_secrets=fallback_secrets,
            allowed_origins=allowed_origins,
            key=key,
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
        ValueError: an option out of range, or an origin that is not ``scheme://host``.
    """
    return WSGIApp(
        _endpoint(
            secret=secret,
            fallback_secrets=fallback_secrets,
            allowed_origins=allowed_origins,
            key=key,
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
        max_body_bytes=max_body_bytes,
        body_timeout_s=body_timeout_s,
        max_updates_per_token=max_updates_per_token,
        max_tracked_tokens=max_tracked_tokens,
    )
    return _Endpoint(options)
