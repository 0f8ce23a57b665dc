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

from otel_feedback._environment import (
    OTEL_PYTHON_FEEDBACK_TOKEN_SECRET,
    follow_trace_sampling,
    sdk_disabled,
    token_secret,
)
from otel_feedback._errors import FeedbackTokenError, InvalidFeedbackError
from otel_feedback._log import logger, warn_once
from otel_feedback._recording.handoff import direct_sinks
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
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_ORIGIN_FORM: Final = 'each must be scheme://host[:port], e.g. https://app.example, or "*"'
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
    keys: frozenset[str] | None = None
    trust_forwarded_headers: bool = False
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
        keys: Iterable[str] | None,
        trust_forwarded_headers: bool,
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
        accepted = _keys(keys, key)
        if not isinstance(trust_forwarded_headers, bool):
            raise ValueError("trust_forwarded_headers: must be True or False")
        if key is None and accepted is None:
            warn_once(
                "web-any-key",
                "otel_feedback.web: no keys= given: feedback is recorded under any key a valid "
                "token names, internal ones included; pass keys=[...] with the keys the "
                "page's tokens are minted for",
            )
        _check_secret_at_start(secret)
        return cls(
            secret=secret,
            fallback_secrets=fallback_secrets,
            allowed_origins=origins,
            key=key,
            keys=accepted,
            trust_forwarded_headers=trust_forwarded_headers,
            max_body_bytes=max_body_bytes,
            body_timeout_s=float(body_timeout_s),
            max_updates_per_token=max_updates_per_token,
            max_tracked_tokens=max_tracked_tokens,
        )


def _check_secret_at_start(secret: str | bytes | None) -> None:
    """Refuse a bad ``secret=``; warn (never showing it) about a missing or bad variable."""
    if secret is not None:
        check_secret(secret)  # a short or blank secret is a start-up error
        return
    # The variable is read at each request, so it may be fixed later; until then every
    # POST is a 500.
    from_environment = token_secret()
    if from_environment is None:
        logger.warning(
            "otel_feedback.web: no token secret yet: set %s, or pass secret=; until then "
            "every feedback POST answers 500",
            OTEL_PYTHON_FEEDBACK_TOKEN_SECRET,
        )
        return
    try:
        check_secret(from_environment)
    except FeedbackTokenError as error:
        logger.warning(
            "otel_feedback.web: %s is not a usable token secret (%s): every feedback POST "
            "answers 500 until it is fixed",
            OTEL_PYTHON_FEEDBACK_TOKEN_SECRET,
            error.reason,
        )


def _keys(keys: Iterable[str] | None, key: str | None) -> frozenset[str] | None:
    if keys is None:
        return None
    if isinstance(keys, str):
        raise ValueError("keys: must be a list of keys, not one string")
    accepted = frozenset(keys)
    if not accepted or not all(isinstance(k, str) and k for k in accepted):
        raise ValueError("keys: must be a non-empty list of non-empty strings")
    if key is not None and key not in accepted:
        raise ValueError("keys: must include key=, the key recorded for tokens that name none")
    return accepted


def _origin(text: object) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it in ``Origin``; or ``*``.

    A default port is dropped (browsers never send it); what could never match an
    ``Origin`` header (a wildcard, user info, a path, another scheme) is refused.
    """
    if not isinstance(text, str):
        raise ValueError("allowed_origins: each origin must be a string")
    entry = text.strip()
    if entry == "*":
        return "*"
    parts = urlsplit(entry)
    if "@" in parts.netloc:
        # Named without what precedes the @: it may be a password.
        shown = f"{parts.scheme}://…@{parts.netloc.rpartition('@')[2]}"
        raise ValueError(
            f"allowed_origins: {shown!r} has user info, which an Origin never has; " + _ORIGIN_FORM
        )

    def refused(why: str) -> ValueError:
        return ValueError(f"allowed_origins: {entry!r} {why}; {_ORIGIN_FORM}")

    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise refused("is not an http or https origin")
    if "*" in parts.netloc:
        raise refused("has a wildcard, which matches nothing: list each origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment or entry.endswith(("?", "#")):
        raise refused("has a path, query or fragment, which an Origin never has")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise refused("has a port that is not a number from 0 to 65535") from None
    if not host:
        raise refused("has no host")
    return _same_origin(scheme, f"[{host}]" if ":" in host else host, port)


def _same_origin(scheme: str, host: str, port: int | None) -> str:
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origins_of_host(schemes: Iterable[str], host: str) -> set[str]:
    """The origins a page served as ``host`` (a Host header's value) has, per scheme."""
    name, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
    if not colon or not port.isdigit():
        name, port = host, ""
    return {_same_origin(s, name, int(port) if port else None) for s in schemes}


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
                warn_once(
                    "web-no-secret",
                    "otel_feedback.web: feedback POSTs answer 500: %s: %s",
                    "secret=" if options.secret is not None else OTEL_PYTHON_FEEDBACK_TOKEN_SECRET,
                    error.reason,
                )
                return _error(500, "secret", "the server has no usable token secret", cors)
            return _error(403, "token", "not valid: garbled, another secret's, or expired", cors)
        if claims.key is None:  # the token allows any key: the endpoint names it
            key = options.key
            if key is None:
                return _error(400, "key", _RULES["key"], cors)
        elif (options.key is not None and claims.key != options.key) or (
            options.keys is not None and claims.key not in options.keys
        ):
            return _error(403, "token", "does not allow this endpoint's key", cors)
        else:
            key = claims.key
        values = {name: fields.get(name) for name in _FIELDS[1:]}
        # Every accepted submission is exported, under the token's one id: none is skipped
        # as identical (with several workers, each would judge against its own memory).
        decision = self._resubmissions.check(token, key, claims.expires.timestamp())
        if decision.refused:
            return _error(429, "token", "too many updates with this token", cors)
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
        if recorded is not None:
            return _json(201, {"id": str(recorded.id)}, cors)
        if sdk_disabled():  # OTEL_SDK_DISABLED=true: nothing is recorded, by choice
            return _json(201, {"id": None}, cors)
        if follow_trace_sampling() or direct_sinks():  # dropped with its unsampled trace
            return _json(201, {"id": str(token_feedback_id(token, key))}, cors)
        self._resubmissions.forget(decision)
        warn_once(
            "web-not-set-up",
            "otel_feedback.web: feedback POSTs answer 503: no FeedbackSpanProcessor is set "
            "up in this process, so feedback would go nowhere; call otel_feedback.configure() "
            "at start-up, or add a FeedbackSpanProcessor to the TracerProvider",
        )
        return _error(503, "feedback", "not set up on this server", cors)

    def _origin_allowed(self, origin: str, headers: Mapping[str, str], scheme: str) -> bool:
        origin = origin.strip().lower()
        allowed = self.options.allowed_origins
        if origin in allowed or "*" in allowed:
            return True
        host = headers.get("host", "").strip().lower()
        # Same origin: the page's origin is this server's own scheme and host. Behind a proxy
        # that ends TLS the scheme seen here is http, so the host decides for either scheme.
        if host and origin in _origins_of_host((scheme, "https"), host):
            return True
        if not self.options.trust_forwarded_headers:
            return False
        # The proxy's own view of the request, when it says so (the first of a list is the
        # one the browser reached).
        forwarded = headers.get("x-forwarded-host", "").split(",")[0].strip().lower()
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        schemes = (proto,) if proto in _DEFAULT_PORTS else (scheme, "https")
        return bool(forwarded) and origin in _origins_of_host(schemes, forwarded)

    def _cors_headers(self, headers: Mapping[str, str]) -> list[tuple[str, str]]:
        origin = headers.get("origin", "").strip().lower()
        allowed = self.options.allowed_origins
        if origin and "*" in allowed:
            # Any origin: "*", which browsers never combine with credentials (none are
            # needed: the token is the credential).
            granted = "*"
        elif origin in allowed:
            granted = origin
        else:
            return [("vary", "Origin")]
        return [
            ("vary", "Origin"),
            ("access-control-allow-origin", granted),
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
