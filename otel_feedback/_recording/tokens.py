"""Signed feedback tokens: an end user may give feedback on exactly one run, and no other.

A token is ``base64url(payload || tag)`` without padding, where the payload is the version
byte, the 16-byte trace id, the 8-byte span id (zero: the whole trace), in version 2 the
8-byte span id of the trace's root (never zero), the expiry as 8-byte Unix seconds and the
allowed key in UTF-8 (empty: any key), and the tag is the first 16 bytes of
HMAC-SHA256(secret, payload). Any process that shares the secret can mint and check them;
no server keeps state.

Version 2 is minted when the trace's root is known where the token is made and is not the
bound span itself: LangSmith keeps feedback on a whole trace on its root run, which the
process taking the feedback may never have seen. Version 1 tokens (no root) are minted
otherwise, and verify by the same rules as ever.

Decoding is strict: only the URL-safe alphabet, and only the one canonical text of the bytes
(a decoder that skipped other characters would let a token with characters inserted into it
verify). ``itsdangerous`` is not used for this reason: its decoder drops characters outside
the alphabet and non-ASCII ones, so a garbled token verifies; its payloads are JSON (tokens
twice as long); and its expiry is chosen by the verifier, where ours is carried by the token.
Verification tries the current secret, then each fallback (a rotation); signing uses the
current one only.

Secrets: at least 16 bytes of UTF-8, and not blank (spaces, other whitespace or NUL bytes
only). The fallbacks (``fallback_secrets=`` or ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS``,
comma-separated, whitespace around each stripped, empty entries ignored) are read one by one:
a bad one is reported by its position, never its value, and skipped, so that a mistake in an
old secret never refuses the tokens the current one signed. A secret that contains a comma,
or starts or ends with whitespace, cannot be listed in the variable: pass it in code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import struct
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from otel_feedback._environment import (
    OTEL_PYTHON_FEEDBACK_TOKEN_SECRET,
    OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS,
    token_secret,
    token_secret_fallbacks,
)
from otel_feedback._errors import FeedbackTokenError, InvalidFeedbackError
from otel_feedback._ids import IdLike, datetime_from_ns
from otel_feedback._log import logger
from otel_feedback._recording.record import record_feedback
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.roots import learn_root, real_root_of
from otel_feedback._recording.target import Remote, SpanLike, resolve_target

__all__ = [
    "TokenClaims",
    "check_secret",
    "create_feedback_token",
    "read_feedback_token",
    "record_feedback_from_token",
    "token_feedback_id",
]

_VERSION = 1
_HEAD = struct.Struct(">B16s8sQ")
_VERSION_ROOTED = 2
_HEAD_ROOTED = struct.Struct(">B16s8s8sQ")
_TAG_BYTES = 16
_MIN_SECRET_BYTES = 16
_MAX_KEY_BYTES = 256
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
# The last second a token may expire at: 9999-12-31T23:59:59Z, the end of ``datetime``.
_MAX_EXPIRES = 253_402_300_799
# One token, one feedback id per key: a resubmission updates the same feedback.
_TOKEN_FEEDBACK_IDS = uuid5(NAMESPACE_URL, "https://opentelemetry.io/otel-feedback/token")
# The clock, as a name the tests can replace.
_now = time.time


def create_feedback_token(
    *,
    span: SpanLike | None = None,
    trace_id: IdLike | None = None,
    run_id: IdLike | None = None,
    key: str | None = None,
    expires_in: timedelta = timedelta(hours=3),
    secret: str | bytes | None = None,
) -> str:
    """A URL-safe token that lets its holder give feedback on one run, until it expires.

    Mint it where the run happens (by default for the current span) and hand it to the
    client with the answer; :func:`record_feedback_from_token` accepts it later, in any
    process that shares the secret.

    Example::

        with tracer.start_as_current_span("answer"):
            token = create_feedback_token(key="user_rating")

    Args:
        span: the run, as a ``Span`` or ``SpanContext``; default the current span.
        trace_id: the run's trace (instead of ``span``); alone, the whole trace.
        run_id: the run's span within ``trace_id``.
        key: the only feedback key the token allows; ``None`` allows any.
        expires_in: how long the token is valid (at least a second; rounded up to whole
            seconds; the expiry must fall before the year 10000).
        secret: the signing secret (16 bytes or more, not blank); default
            ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET``.

    Raises:
        FeedbackTokenError: no secret, or one that is too short or blank.
        InvalidFeedbackError: no run to bind, a bad id, key or ``expires_in`` (under a
            second, or so large that the expiry falls after 9999-12-31).
    """
    signing_key = _secret(secret)
    target = resolve_target(span, trace_id, run_id, None)
    if target is None:
        raise InvalidFeedbackError(
            "span", "no run to bind: no span is current and no span or ids were given"
        )
    if not isinstance(target, Remote):
        context = target.get_span_context()
        target = Remote(context.trace_id, context.span_id, context.trace_flags.sampled)
    if not isinstance(expires_in, timedelta) or expires_in < timedelta(seconds=1):
        raise InvalidFeedbackError(
            "expires_in", f"must be a timedelta of a second or more, got {expires_in!r}"
        )
    key_bytes = b"" if key is None else _key_bytes(key)
    # Rounded up: the token is valid for at least expires_in.
    expires = math.ceil(_now() + expires_in.total_seconds())
    if expires > _MAX_EXPIRES:
        raise InvalidFeedbackError(
            "expires_in", "too large: the token would expire after 9999-12-31"
        )
    trace_bytes = target.trace_id.to_bytes(16, "big")
    span_bytes = target.span_id.to_bytes(8, "big")
    root = real_root_of(target.trace_id)
    if root and root != target.span_id:
        payload = _HEAD_ROOTED.pack(
            _VERSION_ROOTED, trace_bytes, span_bytes, root.to_bytes(8, "big"), expires
        )
    else:
        payload = _HEAD.pack(_VERSION, trace_bytes, span_bytes, expires)
    payload += key_bytes
    return base64.urlsafe_b64encode(payload + _tag(signing_key, payload)).rstrip(b"=").decode()


def record_feedback_from_token(
    token: str,
    *,
    key: str | None = None,
    score: bool | int | float | None = None,
    value: bool | int | float | str | dict[str, Any] | None = None,
    comment: str | None = None,
    correction: dict[str, Any] | str | None = None,
    secret: str | bytes | None = None,
    fallback_secrets: Sequence[str | bytes] | None = None,
) -> RecordedFeedback | None:
    """Record an end user's feedback on the run a token was minted for.

    The token is checked (signature in constant time, then expiry and key) before anything
    is recorded; the feedback then goes to its run like ``record_feedback(trace_id=...,
    run_id=...)``, with ``feedback_source.type`` ``"app"``. One token gives one feedback id
    (per key): a resubmission with the same token updates that feedback in receivers that
    de-duplicate on the id, instead of adding another.

    Example::

        record_feedback_from_token(body["token"], score=body["score"], comment=body["comment"])

    Args:
        token: as made by :func:`create_feedback_token`.
        key: the feedback key; default (and the only one allowed) the token's own.
        score: as for ``record_feedback``.
        value: as for ``record_feedback``.
        comment: as for ``record_feedback``.
        correction: as for ``record_feedback``.
        secret: the verifying secret; default ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET``.
        fallback_secrets: earlier secrets that still verify (a rotation); default
            ``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS``.

    Returns:
        As for ``record_feedback``; ``None`` when nothing is recorded (``OTEL_SDK_DISABLED``).

    Raises:
        FeedbackTokenError: the token is garbled, truncated, tampered with, signed with
            another secret, or expired; the key is not the one it allows; no secret.
        InvalidFeedbackError: bad feedback values, as for ``record_feedback``.
    """
    trace_id, span_id, allowed_key, _expires, root = read_feedback_token(
        token, secret=secret, fallback_secrets=fallback_secrets
    )
    if allowed_key is not None and key is not None and key != allowed_key:
        raise FeedbackTokenError("key", f"the token allows only the key {allowed_key!r}")
    chosen = key if key is not None else allowed_key
    if chosen is None:
        raise InvalidFeedbackError("key", "required: the token allows any key but names none")
    if root:
        # Signed where the trace ran: feedback on the whole trace finds its root run.
        learn_root(trace_id, root)
    return record_feedback(
        chosen,
        score=score,
        value=value,
        comment=comment,
        correction=correction,
        feedback_source_type="app",
        feedback_id=token_feedback_id(token, chosen),
        trace_id=trace_id,
        run_id=span_id or None,
    )


def token_feedback_id(token: str, key: str) -> UUID:
    """The feedback id every submission of ``token`` for ``key`` records under."""
    return uuid5(_TOKEN_FEEDBACK_IDS, f"{token}\n{key}")


class TokenClaims(NamedTuple):
    """What a verified feedback token allows: the run, the key (``None``: any) and its expiry.

    ``root_span_id``: the span id of the trace's root when the token was minted knowing it
    (0: not carried, or the bound span is the root).
    """

    trace_id: int
    span_id: int
    key: str | None
    expires: datetime
    root_span_id: int = 0


def read_feedback_token(
    token: str,
    *,
    secret: str | bytes | None = None,
    fallback_secrets: Sequence[str | bytes] | None = None,
) -> TokenClaims:
    """Verify ``token`` as :func:`record_feedback_from_token` does, and say what it allows.

    A bad fallback secret (short, blank, not str or bytes) is logged, by its position only,
    and skipped.

    Raises:
        FeedbackTokenError: as :func:`record_feedback_from_token` for the token and secret.
    """
    keys = [_secret(secret)]
    fallbacks: list[str | bytes]
    if fallback_secrets is None:
        where, fallbacks = OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS, [*token_secret_fallbacks()]
    else:
        where, fallbacks = "fallback_secrets", list(fallback_secrets)
    keys.extend(_usable_fallbacks(fallbacks, where))
    return _verify(token, keys)


def _usable_fallbacks(fallbacks: Sequence[object], where: str) -> list[bytes]:
    usable = []
    for position, fallback in enumerate(fallbacks, 1):
        try:
            if not isinstance(fallback, str | bytes):  # None would mean the current secret
                raise FeedbackTokenError("fallback_secrets", "must be str or bytes")
            usable.append(_secret(fallback, name="fallback_secrets"))
        except FeedbackTokenError as error:
            # Logged at every use, not once: the fallback stays skipped until it is fixed.
            # The value is never shown, only its position and what is wrong.
            logger.warning(
                "%s: fallback secret %d of %d skipped: %s",
                where,
                position,
                len(fallbacks),
                error.reason,
            )
    return usable


def _verify(token: object, signing_keys: list[bytes]) -> TokenClaims:
    if not isinstance(token, str) or not _URL_SAFE.fullmatch(token):
        raise FeedbackTokenError("token", "must be a string of URL-safe base64 characters")
    raw = _decoded(token)
    if len(raw) < _HEAD.size + _TAG_BYTES:
        raise FeedbackTokenError("token", "truncated or garbled: too short")
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    # The signature is checked before any field is trusted, in constant time, against the
    # current secret and then each fallback.
    if not any(hmac.compare_digest(tag, _tag(key, payload)) for key in signing_keys):
        raise FeedbackTokenError(
            "token", "signature does not match: tampered with, truncated, or another secret"
        )
    version = payload[0]
    if version == _VERSION:
        _version, trace_bytes, span_bytes, expires = _HEAD.unpack_from(payload)
        root_bytes, head = b"", _HEAD.size
    elif version == _VERSION_ROOTED:
        if len(payload) < _HEAD_ROOTED.size:
            raise FeedbackTokenError("token", "truncated or garbled: too short")
        _version, trace_bytes, span_bytes, root_bytes, expires = _HEAD_ROOTED.unpack_from(payload)
        head = _HEAD_ROOTED.size
        # Only minted with a root that is not the bound span: any other is not a token.
        if not any(root_bytes) or root_bytes == span_bytes:
            raise FeedbackTokenError("token", "garbled: a version 2 token names no other root")
    else:
        raise FeedbackTokenError("token", f"unknown token version {version}")
    # Signed before expiries were bounded at creation: refused, not an OverflowError.
    if expires > _MAX_EXPIRES:
        raise FeedbackTokenError("token", "its expiry is after 9999-12-31")
    if _now() >= expires:
        when = datetime_from_ns(expires * 1_000_000_000).isoformat()
        raise FeedbackTokenError("token", f"expired at {when}")
    key_bytes = payload[head:]
    try:
        allowed_key = key_bytes.decode() if key_bytes else None
    except UnicodeDecodeError:
        raise FeedbackTokenError("token", "its key is not UTF-8") from None
    return TokenClaims(
        int.from_bytes(trace_bytes, "big"),
        int.from_bytes(span_bytes, "big"),
        allowed_key,
        datetime_from_ns(expires * 1_000_000_000),
        int.from_bytes(root_bytes, "big"),
    )


def _decoded(token: str) -> bytes:
    """The bytes of ``token``, which must be their one canonical unpadded URL-safe text."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise FeedbackTokenError("token", "garbled: not URL-safe base64") from None
    # Exact length and no stray bits: the token must be exactly what signing wrote.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        raise FeedbackTokenError("token", "garbled: not the exact text a token is")
    return raw


def _tag(signing_key: bytes, payload: bytes) -> bytes:
    return hmac.new(signing_key, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def _secret(secret: str | bytes | None, *, name: str = "secret") -> bytes:
    # The secret itself never enters a message: only its name and its length do.
    if secret is None:
        secret = token_secret()
        if secret is None:
            raise FeedbackTokenError(
                name, f"no secret: set {OTEL_PYTHON_FEEDBACK_TOKEN_SECRET} (in code: secret=)"
            )
    if isinstance(secret, str):
        try:
            secret = secret.encode()
        except UnicodeEncodeError:
            raise FeedbackTokenError(name, "cannot be encoded as UTF-8") from None
    if not isinstance(secret, bytes):
        raise FeedbackTokenError(name, "must be str or bytes")
    if len(secret) < _MIN_SECRET_BYTES:
        raise FeedbackTokenError(
            name, f"too short: {len(secret)} bytes, at least {_MIN_SECRET_BYTES} needed"
        )
    if not secret.replace(b"\x00", b"").decode(errors="replace").strip():
        raise FeedbackTokenError(name, "blank: only whitespace or NUL bytes")
    return secret


def check_secret(secret: str | bytes) -> None:
    """Raise :class:`FeedbackTokenError` now if ``secret`` could not sign or verify a token."""
    _secret(secret)


def _key_bytes(key: object) -> bytes:
    if not isinstance(key, str) or not key:
        raise InvalidFeedbackError("key", f"must be a non-empty string, got {key!r}")
    try:
        encoded = key.encode()
    except UnicodeEncodeError:
        raise InvalidFeedbackError("key", "cannot be encoded as UTF-8 (a lone surrogate)") from None
    if len(encoded) > _MAX_KEY_BYTES:
        raise InvalidFeedbackError("key", f"too long for a token: at most {_MAX_KEY_BYTES} bytes")
    return encoded
