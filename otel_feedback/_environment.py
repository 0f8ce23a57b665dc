"""Every environment variable this package reads: one constant each, and their readers.

A bad value is logged once, naming the variable and the value, and the default is used:
configuration never stops the application.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_BLRP_EXPORT_TIMEOUT,
    OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BLRP_MAX_QUEUE_SIZE,
    OTEL_BLRP_SCHEDULE_DELAY,
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)

from otel_feedback._log import warn_once

__all__ = [
    "EXPORTER_NAMES",
    "OTEL_PYTHON_FEEDBACK_EXPORTER",
    "OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT",
    "OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING",
    "OTEL_PYTHON_FEEDBACK_JSONL_PATH",
    "OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE",
    "OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE",
    "OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY",
    "OTEL_PYTHON_FEEDBACK_SPOOL_PATH",
    "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET",
    "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS",
    "PHOENIX_API_KEY",
    "PHOENIX_COLLECTOR_ENDPOINT",
    "PROTOCOLS",
    "ProcessorOptions",
    "exporter_names",
    "follow_trace_sampling",
    "jsonl_path",
    "otlp_http_credential_provider_set",
    "otlp_logs_protocol",
    "otlp_traces_protocol",
    "phoenix_api_key",
    "phoenix_endpoint",
    "processor_options",
    "sdk_disabled",
    "spool_path",
    "token_secret",
    "token_secret_fallbacks",
    "traces_exporter_name",
]

OTEL_PYTHON_FEEDBACK_EXPORTER: Final = "OTEL_PYTHON_FEEDBACK_EXPORTER"
"""Comma-separated feedback exporters: ``otlp``, ``console``, ``jsonl``, ``phoenix``, ``none``.

Default ``otlp``. ``none`` anywhere in the list means no exporter at all. Unknown names are
skipped with one warning; if none is left, the default is used.
"""

OTEL_PYTHON_FEEDBACK_JSONL_PATH: Final = "OTEL_PYTHON_FEEDBACK_JSONL_PATH"
"""The file the ``jsonl`` exporter appends to.

Default ``feedback.jsonl`` in the working directory.
"""

OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE: Final = "OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE"
"""Records held at most while waiting for export.

Default: ``OTEL_BLRP_MAX_QUEUE_SIZE``, else 2048.
"""

OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE: Final = "OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE"
"""Records per export call at most.

Default: ``OTEL_BLRP_MAX_EXPORT_BATCH_SIZE``, else 512.
"""

OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY: Final = "OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY"
"""Milliseconds a partial batch waits at most.

Default: ``OTEL_BLRP_SCHEDULE_DELAY``, else 1000.
"""

OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT: Final = "OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT"
"""Milliseconds ``force_flush`` waits by default.

Default: ``OTEL_BLRP_EXPORT_TIMEOUT``, else 30000.
"""

OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING: Final = "OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING"
"""``true``: feedback on a trace that was sampled out is dropped like its spans.

Default ``false``: feedback is rarer and more precious than spans, so it is exported even when
its trace was not recorded.
"""

OTEL_PYTHON_FEEDBACK_TOKEN_SECRET: Final = "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET"  # noqa: S105
"""The secret that signs and verifies feedback tokens (at least 16 bytes). No default."""

OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS: Final = "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS"  # noqa: S105
"""Earlier secrets, comma-separated, that still verify tokens but sign none: a rotation.

Like Django's ``SECRET_KEY_FALLBACKS``: set the new secret, move the old one here until the
tokens it signed have expired, then drop it. No default.
"""

OTEL_PYTHON_FEEDBACK_SPOOL_PATH: Final = "OTEL_PYTHON_FEEDBACK_SPOOL_PATH"
"""An sqlite file that keeps records until delivered, across crashes and outages. Unset: off."""

PHOENIX_COLLECTOR_ENDPOINT: Final = "PHOENIX_COLLECTOR_ENDPOINT"
"""Phoenix's base URL for the ``phoenix`` exporter, as Phoenix's own client reads it."""

PHOENIX_API_KEY: Final = "PHOENIX_API_KEY"
"""Phoenix's API key for the ``phoenix`` exporter, as Phoenix's own client reads it."""

PROTOCOL_HTTP_PROTOBUF: Final = "http/protobuf"
PROTOCOL_GRPC: Final = "grpc"
PROTOCOLS: Final = (PROTOCOL_HTTP_PROTOBUF, PROTOCOL_GRPC)
EXPORTER_NAMES: Final = ("otlp", "console", "jsonl", "phoenix")
_NO_EXPORTER: Final = "none"
_DEFAULT_EXPORTERS: Final = ("otlp",)
_DEFAULT_JSONL_PATH: Final = "feedback.jsonl"
_DEFAULT_PHOENIX_ENDPOINT: Final = "http://localhost:6006"


def _bad_value(name: str, raw: str, expected: str, default: object) -> None:
    warn_once(
        f"env:{name}={raw}",
        "%s=%r is not %s; using %s",
        name,
        raw,
        expected,
        default,
    )


def sdk_disabled() -> bool:
    """``OTEL_SDK_DISABLED=true``, read as the SDK reads it."""
    return os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def follow_trace_sampling() -> bool:
    """``OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING``: ``true`` or ``false``."""
    raw = os.environ.get(OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING, "").strip()
    if raw.lower() in ("", "false"):
        return False
    if raw.lower() == "true":
        return True
    _bad_value(OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING, raw, "true or false", "false")
    return False


def token_secret() -> str | None:
    """``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET``, or ``None`` when unset.

    Never logged: a bad secret is reported by name only, by the token module.
    """
    return os.environ.get(OTEL_PYTHON_FEEDBACK_TOKEN_SECRET) or None


def token_secret_fallbacks() -> list[str]:
    """``OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS``: the earlier secrets, in order."""
    raw = os.environ.get(OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


_HTTP_CREDENTIAL_PROVIDERS: Final = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_LOGS_CREDENTIAL_PROVIDER",
)


def otlp_http_credential_provider_set() -> bool:
    """Whether the SDK's OTLP/HTTP log exporter loads its session from a credential provider."""
    return any(os.environ.get(name, "").strip() for name in _HTTP_CREDENTIAL_PROVIDERS)


def otlp_logs_protocol() -> str:
    """The OTLP protocol for feedback records, as the SDK chooses it for logs."""
    return _otlp_protocol(OTEL_EXPORTER_OTLP_LOGS_PROTOCOL)


def otlp_traces_protocol() -> str:
    """The OTLP protocol for spans, for the TracerProvider that configure() may create."""
    return _otlp_protocol(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)


def traces_exporter_name() -> str:
    """``OTEL_TRACES_EXPORTER`` for the provider configure() may create: otlp, console or none."""
    raw = os.environ.get(OTEL_TRACES_EXPORTER, "").strip()
    name = raw.lower() or "otlp"
    if name in ("otlp", "console", _NO_EXPORTER):
        return name
    _bad_value(OTEL_TRACES_EXPORTER, raw, "otlp, console or none", "otlp")
    return "otlp"


def _otlp_protocol(specific: str) -> str:
    # The signal's own variable, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
    # http/json has no Python exporter: it falls back to the default like any bad value.
    for name in (specific, OTEL_EXPORTER_OTLP_PROTOCOL):
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        if raw.lower() in PROTOCOLS:
            return raw.lower()
        _bad_value(name, raw, "one of " + ", ".join(PROTOCOLS), PROTOCOL_HTTP_PROTOBUF)
        return PROTOCOL_HTTP_PROTOBUF
    return PROTOCOL_HTTP_PROTOBUF


def exporter_names() -> tuple[str, ...]:
    """The exporters ``OTEL_PYTHON_FEEDBACK_EXPORTER`` asks for, known names only, in order."""
    raw = os.environ.get(OTEL_PYTHON_FEEDBACK_EXPORTER, "").strip()
    if not raw:
        return _DEFAULT_EXPORTERS
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if _NO_EXPORTER in names:
        return ()
    known = tuple(dict.fromkeys(n for n in names if n in EXPORTER_NAMES))
    unknown = [n for n in names if n not in EXPORTER_NAMES]
    if unknown:
        expected = "a comma list of " + ", ".join((*EXPORTER_NAMES, _NO_EXPORTER))
        _bad_value(
            OTEL_PYTHON_FEEDBACK_EXPORTER, raw, expected, ",".join(known or _DEFAULT_EXPORTERS)
        )
    return known or _DEFAULT_EXPORTERS


def phoenix_endpoint() -> str:
    """Phoenix's base URL; a trailing ``/v1/traces`` (an OTLP endpoint) is taken off."""
    raw = os.environ.get(PHOENIX_COLLECTOR_ENDPOINT, "").strip().rstrip("/")
    return raw.removesuffix("/v1/traces") or _DEFAULT_PHOENIX_ENDPOINT


def phoenix_api_key() -> str | None:
    """Phoenix's API key, or ``None``. Never logged."""
    return os.environ.get(PHOENIX_API_KEY, "").strip() or None


def spool_path() -> str | None:
    """The spool file, or ``None`` when spooling is off."""
    return os.environ.get(OTEL_PYTHON_FEEDBACK_SPOOL_PATH, "").strip() or None


def jsonl_path() -> str:
    """The file of the ``jsonl`` exporter."""
    return os.environ.get(OTEL_PYTHON_FEEDBACK_JSONL_PATH, "").strip() or _DEFAULT_JSONL_PATH


@dataclass(frozen=True)
class ProcessorOptions:
    """The keyword options of FeedbackSpanProcessor, as the environment sets them."""

    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    schedule_delay_millis: float = 1000
    export_timeout_millis: float = 30_000


def processor_options() -> ProcessorOptions:
    """Queue, batch, delay and timeout from our variables, else ``OTEL_BLRP_*``, else defaults.

    Feedback leaves as OTLP logs, so the batch log record processor's standard variables are
    the natural knobs; ours come first so that feedback can be tuned apart from the
    application's own logs.
    """
    defaults = ProcessorOptions()
    queue = _positive(
        (OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE, OTEL_BLRP_MAX_QUEUE_SIZE), defaults.max_queue_size
    )
    batch = _positive(
        (OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE, OTEL_BLRP_MAX_EXPORT_BATCH_SIZE),
        defaults.max_export_batch_size,
    )
    if batch > queue:
        _bad_value(
            OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE,
            str(batch),
            f"at most the queue size {queue}",
            queue,
        )
        batch = queue
    return ProcessorOptions(
        max_queue_size=queue,
        max_export_batch_size=batch,
        schedule_delay_millis=_positive(
            (OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY, OTEL_BLRP_SCHEDULE_DELAY),
            defaults.schedule_delay_millis,
        ),
        export_timeout_millis=_positive(
            (OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT, OTEL_BLRP_EXPORT_TIMEOUT),
            defaults.export_timeout_millis,
        ),
    )


def _positive(names: tuple[str, ...], default: int | float) -> int:
    for name in names:
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value > 0:
            return value
        _bad_value(name, raw, "a positive integer", default)
        return int(default)
    return int(default)
