"""Signed feedback tokens: every way a token can be wrong is refused."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_feedback import (
    FeedbackTokenError,
    InvalidFeedbackError,
    create_feedback_token,
    record_feedback_from_token,
)
from otel_feedback._recording import tokens as _tokens
from tests.conftest import Pipeline

SECRET = "correct horse battery staple 42"
OTHER_SECRET = "another secret, 16+ bytes long"
TRACE = 0x0AF7651916CD43DD8448EB211C80319C
SPAN = 0xB7AD6B7169203331


def _token(**options: object) -> str:
    return create_feedback_token(trace_id=TRACE, run_id=SPAN, secret=SECRET, **options)  # type: ignore[arg-type]


def test_a_token_from_the_run_accepts_feedback_after_it_ended(global_pipeline: Pipeline) -> None:
    with global_pipeline.tracer.start_as_current_span("answer") as span:
        token = create_feedback_token(key="user_rating", secret=SECRET)
    record = record_feedback_from_token(token, score=1, comment="great", secret=SECRET)
    assert record is not None
    built = record.to_feedback()
    ids = span.get_span_context()
    assert record.trace_id == uuid.UUID(int=ids.trace_id)
    assert record.run_id == uuid.UUID(int=ids.span_id)
    assert record.key == "user_rating"
    assert built.feedback_source is not None
    assert built.feedback_source.type == "app"
    global_pipeline.flush()
    assert global_pipeline.feedback.get_finished_feedback() == (built,)
    carriers = [s for s in global_pipeline.spans.get_finished_spans() if s.name.startswith("feed")]
    assert carriers[0].parent is not None
    assert carriers[0].parent.span_id == ids.span_id


def test_tokens_are_compact_and_url_safe() -> None:
    token = _token(key="user_rating")
    assert len(token) < 100
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_secret_may_come_from_the_environment(
    global_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", SECRET)
    token = create_feedback_token(trace_id=TRACE, run_id=SPAN, key="k")
    record = record_feedback_from_token(token, score=True)
    assert record is not None
    assert record.run_id == uuid.UUID(int=SPAN)


MINT = """
from otel_feedback import create_feedback_token
print(create_feedback_token(trace_id=%d, run_id=%d, key="user_rating"))
"""


def test_a_token_minted_in_another_process_is_accepted(global_pipeline: Pipeline) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["OTEL_PYTHON_FEEDBACK_TOKEN_SECRET"] = SECRET
    token = subprocess.run(
        [sys.executable, "-c", MINT % (TRACE, SPAN)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    record = record_feedback_from_token(token, score=0, secret=SECRET)
    assert record is not None
    assert (record.trace_id, record.run_id) == (uuid.UUID(int=TRACE), uuid.UUID(int=SPAN))


def test_a_token_for_a_whole_trace(global_pipeline: Pipeline) -> None:
    token = create_feedback_token(trace_id=TRACE, key="k", secret=SECRET)
    record = record_feedback_from_token(token, score=1, secret=SECRET)
    assert record is not None
    assert record.run_id is None
    assert record.trace_id == uuid.UUID(int=TRACE)


def test_a_token_without_a_key_takes_the_callers(global_pipeline: Pipeline) -> None:
    token = _token()
    record = record_feedback_from_token(token, key="anything", score=1, secret=SECRET)
    assert record is not None
    assert record.key == "anything"
    with pytest.raises(InvalidFeedbackError, match=r"^key: required"):
        record_feedback_from_token(token, score=1, secret=SECRET)


def _refused(token: object, *, secret: str = SECRET, key: str | None = None) -> FeedbackTokenError:
    with pytest.raises(FeedbackTokenError) as caught:
        record_feedback_from_token(token, key=key, score=1, secret=secret)  # type: ignore[arg-type]
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    return caught.value


def test_another_key_is_refused() -> None:
    error = _refused(_token(key="user_rating"), key="correctness")
    assert error.field == "key"
    assert "user_rating" in str(error)


def test_another_secret_is_refused() -> None:
    assert "signature" in str(_refused(_token(key="k"), secret=OTHER_SECRET))


@pytest.mark.parametrize("garbled", ["", "!!!", "not a token at all", "é" * 60, "A" * 10])
def test_garbled_tokens_are_refused(garbled: str) -> None:
    assert _refused(garbled).field == "token"


def test_a_non_string_token_is_refused() -> None:
    assert _refused(b"bytes").field == "token"


def test_every_truncation_is_refused() -> None:
    token = _token(key="user_rating")
    for end in range(len(token)):
        _refused(token[:end])


def test_reordered_parts_are_refused() -> None:
    raw = base64.urlsafe_b64decode(_token(key="user_rating") + "==")
    swapped = raw[1:17] + raw[:1] + raw[17:]
    _refused(base64.urlsafe_b64encode(swapped).decode().rstrip("="))
    rotated = raw[-16:] + raw[:-16]
    _refused(base64.urlsafe_b64encode(rotated).decode().rstrip("="))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_bit_flip_is_refused(data: st.DataObject) -> None:
    raw = bytearray(base64.urlsafe_b64decode(_token(key="user_rating") + "=="))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    _refused(base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="))


def test_a_token_for_another_run_cannot_be_made_into_ours() -> None:
    # Splice our run's ids into a token signed for another run: the signature fails.
    ours = base64.urlsafe_b64decode(_token(key="k") + "==")
    theirs = base64.urlsafe_b64decode(
        create_feedback_token(trace_id=TRACE, run_id=SPAN + 1, key="k", secret=SECRET) + "=="
    )
    spliced = theirs[:1] + ours[1:25] + theirs[25:]
    _refused(base64.urlsafe_b64encode(spliced).decode().rstrip("="))


def test_expiry_edge(global_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tokens, "_now", lambda: 1_000_000.0)
    token = _token(key="k", expires_in=timedelta(seconds=60))
    monkeypatch.setattr(_tokens, "_now", lambda: 1_000_059.999)
    assert record_feedback_from_token(token, score=1, secret=SECRET) is not None
    monkeypatch.setattr(_tokens, "_now", lambda: 1_000_060.0)
    assert "expired" in str(_refused(token))


def test_no_secret_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", raising=False)
    with pytest.raises(FeedbackTokenError, match="OTEL_PYTHON_FEEDBACK_TOKEN_SECRET") as caught:
        create_feedback_token(trace_id=TRACE, run_id=SPAN)
    assert caught.value.field == "secret"
    with pytest.raises(FeedbackTokenError, match=r"^secret: "):
        record_feedback_from_token("x" * 80, score=1)


def test_a_short_secret_is_refused_without_showing_it() -> None:
    with pytest.raises(FeedbackTokenError, match="too short") as caught:
        create_feedback_token(trace_id=TRACE, run_id=SPAN, secret="hunter2")
    assert "hunter2" not in str(caught.value)


def test_the_secret_never_reaches_the_log(
    global_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = _token(key="k")
    record_feedback_from_token(token, score=1, secret=SECRET)
    for bad in (token[:-3], "garbage"):
        with pytest.raises(FeedbackTokenError):
            record_feedback_from_token(bad, score=1, secret=SECRET)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"expires_in": timedelta(0)}, "expires_in"),
        ({"expires_in": 60}, "expires_in"),
        ({"key": ""}, "key"),
        ({"key": "k" * 300}, "key"),
    ],
)
def test_bad_token_options(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidFeedbackError) as caught:
        _token(**options)
    assert caught.value.field == field


def test_a_token_needs_a_run() -> None:
    with pytest.raises(InvalidFeedbackError, match=r"^span: no run to bind"):
        create_feedback_token(secret=SECRET)


@pytest.mark.parametrize("inserted", ["!!!!", "    ", "\n\n\n\n", "*.*.", "====", "é", "+/"])
@pytest.mark.parametrize("where", [0, 10, 40, -3])
def test_characters_outside_the_alphabet_are_refused_anywhere(inserted: str, where: int) -> None:
    token = _token(key="user_rating")
    assert _refused(token[:where] + inserted + token[where:]).field == "token"


def test_a_token_of_another_length_is_refused() -> None:
    token = _token(key="user_rating")
    # Same bytes, other text: extra trailing bits or padding are not the token.
    assert _refused(token + "A").field == "token"
    assert _refused(token + "=").field == "token"


def test_one_token_gives_one_feedback_id(global_pipeline: Pipeline) -> None:
    token = _token(key="user_rating")
    first = record_feedback_from_token(token, score=0, secret=SECRET)
    again = record_feedback_from_token(token, score=1, secret=SECRET)
    another_token = _token(key="user_rating", expires_in=timedelta(minutes=5))
    other = record_feedback_from_token(another_token, score=1, secret=SECRET)
    assert first is not None
    assert again is not None
    assert other is not None
    assert first.id == again.id  # a resubmission updates the same feedback
    assert other.id != first.id
    global_pipeline.flush()
    assert [r.id for r in global_pipeline.feedback.get_finished_feedback()].count(first.id) == 2


def test_a_token_for_any_key_gives_one_id_per_key(global_pipeline: Pipeline) -> None:
    token = _token()
    a = record_feedback_from_token(token, key="a", score=1, secret=SECRET)
    b = record_feedback_from_token(token, key="b", score=1, secret=SECRET)
    assert a is not None
    assert b is not None
    assert a.id != b.id


def test_a_rotated_secret_still_verifies_but_no_longer_signs(
    global_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _token(key="k")
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", OTHER_SECRET)
    monkeypatch.setenv(
        "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS", f"unused-secret-0123456, {SECRET}"
    )
    assert record_feedback_from_token(old, score=1) is not None
    new = create_feedback_token(trace_id=TRACE, run_id=SPAN, key="k")
    assert new != old
    monkeypatch.delenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS")
    assert record_feedback_from_token(new, score=1) is not None
    assert "signature" in str(_refused(old, secret=OTHER_SECRET))
    assert record_feedback_from_token(old, score=1, fallback_secrets=[SECRET]) is not None


def test_a_bad_fallback_is_reported_and_skipped_and_current_tokens_still_verify(
    global_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    token = _token(key="k")
    old = create_feedback_token(trace_id=TRACE, run_id=SPAN, key="k", secret=OTHER_SECRET)
    bad: list[object] = ["x", " " * 20, "\0" * 20, None, 42]
    for fallbacks in ([*bad, OTHER_SECRET], [OTHER_SECRET, *bad]):
        caplog.clear()
        assert record_feedback_from_token(
            token,
            score=1,
            secret=SECRET,
            fallback_secrets=fallbacks,  # type: ignore[arg-type]
        )
        assert record_feedback_from_token(
            old,
            score=1,
            secret=SECRET,
            fallback_secrets=fallbacks,  # type: ignore[arg-type]
        )
        skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        # Reported on each use, by position and reason only.
        assert len(skipped) == 2 * len(bad)
        assert any("too short" in m for m in skipped)
        assert any("blank" in m for m in skipped)
        assert any("must be str or bytes" in m for m in skipped)
        assert all(m.startswith("fallback_secrets: fallback secret ") for m in skipped)


def test_the_fallbacks_variable_is_read_entry_by_entry(
    global_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = _token(key="k")
    third = "a third secret of 16+ bytes"
    old = create_feedback_token(trace_id=TRACE, run_id=SPAN, key="k", secret=third)
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", SECRET)
    # A secret with a comma is split in two (the separator), a short one is skipped; the
    # current secret and the good fallback still verify.
    monkeypatch.setenv(
        "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS",
        f"short, has,a comma in it, , {third} ,",
    )
    assert record_feedback_from_token(token, score=1) is not None
    assert record_feedback_from_token(old, score=1) is not None
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 6
    assert all(m.startswith("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS: ") for m in skipped)
    assert "1 of 4" in skipped[0]
    assert not any("has" in m or "comma" in m for m in skipped)


@pytest.mark.parametrize(
    "secret", [" " * 16, "\0" * 32, "\t\n\r \x0b\x0c" * 4, "\u3000" * 8, b"\0" * 16, b" \0" * 9]
)
def test_a_blank_secret_is_refused(secret: str | bytes) -> None:
    with pytest.raises(FeedbackTokenError, match=r"^secret: blank"):
        create_feedback_token(trace_id=TRACE, run_id=SPAN, secret=secret)
    with pytest.raises(FeedbackTokenError, match=r"^secret: blank"):
        record_feedback_from_token(_token(key="k"), score=1, secret=secret)


@pytest.mark.parametrize(
    "expires_in", [timedelta.max, timedelta(days=3_000_000), timedelta(days=365 * 8000)]
)
def test_an_expiry_too_far_is_refused_at_creation(expires_in: timedelta) -> None:
    with pytest.raises(InvalidFeedbackError, match=r"^expires_in: too large") as caught:
        _token(expires_in=expires_in)
    assert not isinstance(caught.value, FeedbackTokenError)


def test_the_longest_expiry_still_verifies(global_pipeline: Pipeline) -> None:
    latest = datetime.fromtimestamp(_tokens._MAX_EXPIRES, timezone.utc)
    assert (latest.year, latest.month, latest.day) == (9999, 12, 31)
    left = timedelta(seconds=_tokens._MAX_EXPIRES - _tokens._now() - 5)
    assert record_feedback_from_token(_token(key="k", expires_in=left), score=1, secret=SECRET)


def test_a_token_signed_with_an_expiry_past_9999_is_refused_not_crashed() -> None:
    # Tokens minted before creation bounded the expiry: signed, but beyond datetime.
    payload = _tokens._HEAD.pack(1, TRACE.to_bytes(16, "big"), SPAN.to_bytes(8, "big"), 2**63)
    payload += b"k"
    raw = payload + _tokens._tag(SECRET.encode(), payload)
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert "after 9999-12-31" in str(_refused(token))


def test_the_missing_secret_message_names_the_variable_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_PYTHON_FEEDBACK_TOKEN_SECRET", raising=False)
    with pytest.raises(FeedbackTokenError) as caught:
        create_feedback_token(trace_id=TRACE, run_id=SPAN)
    assert caught.value.reason.startswith("no secret: set OTEL_PYTHON_FEEDBACK_TOKEN_SECRET")
    assert "pass secret=" not in str(caught.value)


def test_under_a_second_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidFeedbackError, match=r"^expires_in: "):
        _token(expires_in=timedelta(milliseconds=999))


def test_expiry_is_rounded_up(global_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tokens, "_now", lambda: 1_000_000.5)
    token = _token(key="k", expires_in=timedelta(seconds=1, milliseconds=200))
    monkeypatch.setattr(_tokens, "_now", lambda: 1_000_001.6)
    assert record_feedback_from_token(token, score=1, secret=SECRET) is not None
    monkeypatch.setattr(_tokens, "_now", lambda: 1_000_002.0)
    assert "expired" in str(_refused(token))


@pytest.mark.parametrize("secret", ["a\ud800 sixteen bytes or more", "\udcff" * 20])
def test_a_secret_utf8_cannot_hold_is_refused_by_name(secret: str) -> None:
    with pytest.raises(FeedbackTokenError, match=r"^secret: cannot be encoded"):
        create_feedback_token(trace_id=TRACE, secret=secret)
    with pytest.raises(FeedbackTokenError, match=r"^secret: "):
        record_feedback_from_token(_token(key="k"), score=1, secret=secret)


def _signed(payload: bytes, secret: str = SECRET) -> str:
    raw = payload + _tokens._tag(secret.encode(), payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_token_minted_inside_a_trace_carries_its_root(global_pipeline: Pipeline) -> None:
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("answer") as root, tracer.start_as_current_span("step"):
        on_step = create_feedback_token(key="k", secret=SECRET)
        on_trace = create_feedback_token(
            trace_id=root.get_span_context().trace_id, key="k", secret=SECRET
        )
    with tracer.start_as_current_span("alone"):
        on_root = create_feedback_token(key="k", secret=SECRET)
    root_id = root.get_span_context().span_id
    assert _tokens.read_feedback_token(on_step, secret=SECRET).root_span_id == root_id
    claims = _tokens.read_feedback_token(on_trace, secret=SECRET)
    assert (claims.span_id, claims.root_span_id) == (0, root_id)
    # The bound span is the root: nothing more to carry, the token stays in version 1.
    assert _tokens.read_feedback_token(on_root, secret=SECRET).root_span_id == 0
    assert _tokens._decoded(on_root)[0] == 1
    assert _tokens._decoded(on_step)[0] == 2
    assert len(on_step) < 100


def test_version_1_tokens_verify_as_before() -> None:
    expires = int(_tokens._now()) + 60
    payload = _tokens._HEAD.pack(1, TRACE.to_bytes(16, "big"), SPAN.to_bytes(8, "big"), expires)
    claims = _tokens.read_feedback_token(_signed(payload + b"k"), secret=SECRET)
    assert (claims.trace_id, claims.span_id, claims.key, claims.root_span_id) == (
        TRACE,
        SPAN,
        "k",
        0,
    )


@pytest.mark.parametrize(
    ("root", "reason"),
    [(0, "names no other root"), (SPAN, "names no other root")],
)
def test_a_version_2_token_must_name_another_root(root: int, reason: str) -> None:
    expires = int(_tokens._now()) + 60
    payload = _tokens._HEAD_ROOTED.pack(
        2, TRACE.to_bytes(16, "big"), SPAN.to_bytes(8, "big"), root.to_bytes(8, "big"), expires
    )
    assert reason in str(_refused(_signed(payload + b"k")))


def test_a_version_2_token_cut_inside_its_head_is_refused() -> None:
    payload = _tokens._HEAD.pack(2, TRACE.to_bytes(16, "big"), SPAN.to_bytes(8, "big"), 1)
    assert "too short" in str(_refused(_signed(payload)))


def test_the_root_a_token_carries_cannot_be_changed(global_pipeline: Pipeline) -> None:
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("answer"), tracer.start_as_current_span("step"):
        token = create_feedback_token(key="k", secret=SECRET)
    raw = bytearray(_tokens._decoded(token))
    raw[1 + 16 + 8 + 7] ^= 1  # the root's last byte
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert "signature does not match" in str(_refused(forged))
