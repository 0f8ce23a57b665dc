"""The feedback endpoint without a framework: decisions on headers, then on the body.

An adapter (ASGI, WSGI) calls :meth:`Endpoint.before_body` with the method, path and headers;
if that gives no answer, it reads at most :attr:`Options.max_body_bytes` (plus one byte, to
see an overflow) and calls :meth:`Endpoint.with_body`. Everything here is synchronous and does
no I/O: recording feedback only hands a record to the processors.

Error answers are built from fixed text and the field's name only: nothing of the request
(not the token, not a value, not an unknown field's name) is ever echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from otel_feedback._environment import OTEL_PYTHON_FEEDBACK_TOKEN_SECRET, token_secret
from otel_feedback._errors import FeedbackTokenError, InvalidFeedbackError
from otel_feedback._log import logger
from otel_feedback._recording.tokens import (
    check_secret,
    read_feedback_token,
    record_feedback_from_token,
    token_feedback_id,
)
from otel_feedback.web._resubmissions import Resubmissions
from otel_feedback.web._script import SCRIPT, SCRIPT_ETAG

__all__ = ["Answer", "Endpoint", "Options"]

SCRIPT_PATH: Final = "/feedback.js"
_FIELDS: Final = ("token", "score", "value", "comment", "correction")
# What each field must be, said without the value that was sent.
_RULES: Final = {
    "token": "must be a feedback token (a string)",
    "score": "must be a finite number or a boolean",
    "value": "must be a number, boolean, string or JSON object",
    "comment": "must be a string (at most 65,536 characters)",
    "correction": "must be a string or a JSON object",
    "key": "the token names no key and the endpoint sets none",
}
_JSON_TYPES: Final = ("application/json",)
_DEFAULT_MAX_BODY: Final = 16 * 1024
# Values and corrections nest at most this deep: a structure any exporter can encode, and
# checking it needs no recursion (a parse that recursed deeper is refused as the body).
_MAX_DEPTH: Final = 32
_DEFAULT_BODY_TIMEOUT: Final = 10.0
_DEFAULT_MAX_UPDATES: Final = 20
_DEFAULT_TRACKED_TOKENS: Final = 100_000
# Revalidated after an hour: the URL is not versioned, and an upgrade changes the module.
_SCRIPT_CACHE_CONTROL: Final = "public, max-age=3600"


@dataclass(frozen=True)
class Options:
    """The endpoint's settings, as ``asgi_app`` and ``wsgi_app`` take them."""

    secret: str | bytes | None = None
    fallback_secrets: Sequence[str | bytes] | None = None
    allowed_origins: frozenset[str] = frozenset()
    key: str | None = None
    max_body_bytes: int = _DEFAULT_MAX_BODY
    body_timeout_s: float = _DEFAULT_BODY_TIMEOUT
    max_updates_per_token: int = _DEFAULT_MAX_UPDATES
    max_tracked_tokens: int = _DEFAULT_TRACKED_TOKENS

    @classmethod
    def checked(
        cls,
        *,
        secret: str | bytes | None,
        fallback_secrets: Sequence[str | bytes] | None,
        allowed_origins: Iterable[str],
        key: str | None,
        max_body_bytes: int,
        body_timeout_s: float,
        max_updates_per_token: int,
        max_tracked_tokens: int,
    ) -> Options:
        """The options, each checked now so that a mistake shows at start-up, not per request."""
        if isinstance(allowed_origins, str):
            raise ValueError("allowed_origins: must be a list of origins, not one string")
        origins = frozenset(_origin(o) for o in allowed_origins)
        for name, number in (
            ("max_body_bytes", max_body_bytes),
            ("max_updates_per_token", max_updates_per_token),
            ("max_tracked_tokens", max_tracked_tokens),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ValueError(f"{name}: must be a positive integer")
        if not isinstance(body_timeout_s, int | float) or not 0 < body_timeout_s < 3600:
            raise ValueError("body_timeout_s: must be a number of seconds above 0, below 3600")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError("key: must be a non-empty string or None")
        if secret is not None:
            check_secret(secret)  # a short or blank secret is a start-up error
        elif token_secret() is None:
            # Read at each request, so it may be set later; until then every POST is a 500.
            logger.warning(
                "otel_feedback.web: no token secret yet: set %s, or pass secret=",
                OTEL_PYTHON_FEEDBACK_TOKEN_SECRET,
            )
        return cls(
            secret=secret,
            fallback_secrets=fallback_secrets,
            allowed_origins=origins,
            key=key,
            max_body_bytes=max_body_bytes,
            body_timeout_s=float(body_timeout_s),
            max_updates_per_token=max_updates_per_token,
            max_tracked_tokens=max_tracked_tokens,
        )


def _origin(text: object) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it in ``Origin``."""
    if not isinstance(text, str):
        raise ValueError("allowed_origins: each origin must be a string")
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(
            "allowed_origins: each must be scheme://host[:port], e.g. https://app.example"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # The request body is left unread: the adapter must close the connection after answering.
    close: bool = False


class Endpoint:
    """The endpoint's logic, shared by the adapters; one per mounted app.

    Thread-safe: WSGI servers call it from many threads.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self._resubmissions = Resubmissions(
            max_updates=options.max_updates_per_token, max_tokens=options.max_tracked_tokens
        )

    def before_body(
        self, method: str, path: str, headers: Mapping[str, str], *, scheme: str
    ) -> Answer | None:
        """The answer decided by the request line and headers alone; ``None``: read the body.

        ``headers`` has lower-case names. ``path`` is relative to where the app is mounted.
        """
        cors = self._cors_headers(headers)
        if path == SCRIPT_PATH:
            if method not in ("GET", "HEAD"):
                return _error(405, "method", "GET or HEAD only", extra=[("allow", "GET, HEAD")])
            return self._script(headers, head=method == "HEAD")
        if path not in ("", "/"):
            return _error(404, "path", "not found")
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, headers, scheme):
            # Refused before anything else, and with no CORS headers: the page cannot read it.
            return _error(403, "origin", "this origin may not post feedback", close=True)
        if method == "OPTIONS":
            return Answer(204, [*cors, ("content-length", "0")])
        if method != "POST":
            return _error(405, "method", "POST only", extra=[("allow", "POST, OPTIONS")])
        if not _is_json(headers.get("content-type", "")):
            return _error(415, "content-type", "must be application/json", cors, close=True)
        if "transfer-encoding" not in headers:
            length = headers.get("content-length")
            if length is None:
                return self.length_required(headers)
            if not length.isdigit() or not length.isascii():
                return _error(400, "content-length", "must be a number", cors, close=True)
            if int(length) > self.options.max_body_bytes:
                return _too_large(self.options.max_body_bytes, cors)
        return None

    def too_large(self, headers: Mapping[str, str]) -> Answer:
        """The answer when the body turned out longer than the limit while being read."""
        return _too_large(self.options.max_body_bytes, self._cors_headers(headers))

    def length_required(self, headers: Mapping[str, str]) -> Answer:
        """The answer to a body of unknown length that cannot be read safely."""
        return _error(411, "content-length", "required", self._cors_headers(headers), close=True)

    def too_slow(self, headers: Mapping[str, str]) -> Answer:
        """The answer when the body did not arrive within the timeout."""
        return _error(408, "body", "not received in time", self._cors_headers(headers), close=True)

    def with_body(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """The answer to a POST whose body (within the limit) has been read."""
        cors = self._cors_headers(headers)
        try:
            parsed = json.loads(body)
        except RecursionError:
            return _error(400, "body", "nested too deeply", cors)
        except ValueError:  # also UnicodeDecodeError
            return _error(400, "body", "must be a JSON object in UTF-8", cors)
        if not isinstance(parsed, dict):
            return _error(400, "body", "must be a JSON object", cors)
        if not set(parsed) <= set(_FIELDS):
            return _error(400, "body", f"unknown field; allowed: {', '.join(_FIELDS)}", cors)
        token = parsed.get("token")
        if not isinstance(token, str):
            return _error(400, "token", _RULES["token"], cors)
        for name in ("value", "correction"):
            if _depth(parsed.get(name)) > _MAX_DEPTH:
                return _error(400, name, f"nested deeper than {_MAX_DEPTH} levels", cors)
        return self._record(token, parsed, cors)

    def _record(self, token: str, fields: dict[str, Any], cors: list[tuple[str, str]]) -> Answer:
        options = self.options
        try:
            claims = read_feedback_token(
                token, secret=options.secret, fallback_secrets=options.fallback_secrets
            )
        except FeedbackTokenError as error:
            if error.field != "token":  # no usable secret: the server's fault, not the user's
                return _error(500, "secret", "the server has no usable token secret", cors)
            return _error(403, "token", "not valid: garbled, another secret's, or expired", cors)
        key = options.key if options.key is not None else claims.key
        if claims.key is not None and key != claims.key:
            return _error(403, "token", "does not allow this endpoint's key", cors)
        if key is None:
            return _error(400, "key", _RULES["key"], cors)
        values = {name: fields.get(name) for name in _FIELDS[1:]}
        decision = self._resubmissions.check(token, key, values, claims.expires.timestamp())
        if decision.refused:
            return _error(429, "token", "too many updates with this token", cors)
        if decision.unchanged:  # a double click or a retry: recorded already
            return _json(201, {"id": str(token_feedback_id(token, key))}, cors)
        try:
            recorded = record_feedback_from_token(
                token,
                key=key,
                secret=options.secret,
                fallback_secrets=options.fallback_secrets,
                **values,
            )
        except FeedbackTokenError:  # expired between the two checks
            self._resubmissions.forget(decision)
            return _error(403, "token", "not valid: garbled, another secret's, or expired", cors)
        except InvalidFeedbackError as error:
            self._resubmissions.forget(decision)
            named = error.field.split(".")[0].split("[")[0]
            return _error(400, named, _RULES.get(named, "not valid"), cors)
        return _json(201, {"id": str(recorded.id) if recorded is not None else None}, cors)

    def _origin_allowed(self, origin: str, headers: Mapping[str, str], scheme: str) -> bool:
        origin = origin.strip().lower()
        if origin in self.options.allowed_origins:
            return True
        host = headers.get("host", "").strip().lower()
        # Same origin: the page's origin is this server's own scheme and host. Behind a proxy
        # that ends TLS the scheme seen here is http, so the host decides for either scheme.
        return bool(host) and origin in (f"{scheme}://{host}", f"https://{host}")

    def _cors_headers(self, headers: Mapping[str, str]) -> list[tuple[str, str]]:
        origin = headers.get("origin", "").strip().lower()
        if origin not in self.options.allowed_origins:
            return [("vary", "Origin")]
        return [
            ("vary", "Origin"),
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", "POST, OPTIONS"),
            ("access-control-allow-headers", "content-type"),
            ("access-control-max-age", "600"),
        ]

    def _script(self, headers: Mapping[str, str], *, head: bool) -> Answer:
        common = [
            ("content-type", "text/javascript; charset=utf-8"),
            ("cache-control", _SCRIPT_CACHE_CONTROL),
            ("etag", SCRIPT_ETAG),
            ("x-content-type-options", "nosniff"),
            # Public code: a page of an allowed origin imports it cross-origin (a module
            # script needs CORS); it grants nothing, posting is checked on its own.
            ("access-control-allow-origin", "*"),
        ]
        if SCRIPT_ETAG in (t.strip() for t in headers.get("if-none-match", "").split(",")):
            return Answer(304, common)
        body = b"" if head else SCRIPT
        return Answer(200, [*common, ("content-length", str(len(SCRIPT)))], body)


def _depth(value: object) -> int:
    """How deeply ``value`` nests objects and arrays, found without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > _MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _is_json(content_type: str) -> bool:
    media, _, parameters = content_type.partition(";")
    if media.strip().lower() not in _JSON_TYPES:
        return False
    charset = parameters.strip().lower().removeprefix("charset=").strip('"')
    return charset in ("", "utf-8")


def _too_large(limit: int, cors: list[tuple[str, str]]) -> Answer:
    return _error(413, "body", f"larger than {limit} bytes", cors, close=True)


def _error(
    status: int,
    name: str,
    reason: str,
    cors: Sequence[tuple[str, str]] = (),
    *,
    extra: Sequence[tuple[str, str]] = (),
    close: bool = False,
) -> Answer:
    answer = _json(status, {"error": f"{name}: {reason}", "field": name}, [*cors, *extra])
    return Answer(answer.status, answer.headers, answer.body, close)


def _json(status: int, payload: dict[str, Any], headers: Sequence[tuple[str, str]]) -> Answer:
    body = json.dumps(payload).encode()
    return Answer(
        status,
        [
            *headers,
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ],
        body,
    )
