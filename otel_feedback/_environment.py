"""Every environment variable this package reads: one constant each, and their readers.

A bad value is logged once, naming the variable and the value, and the default is used:
configuration never stops the application.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
    OTEL_EXPORTER_OTLP_LOGS_HEADERS,
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.util.re import parse_env_headers

from otel_feedback._log import warn_once

__all__ = [
    "EXPORTER_NAMES",
    "LANGFUSE_BASE_URL",
    "LANGFUSE_HOST",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "LANGSMITH_API_KEY",
    "LANGSMITH_ENDPOINT",
    "LANGSMITH_PROJECT",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE",
    "OTEL_PYTHON_FEEDBACK_EVALUATORS",
    "OTEL_PYTHON_FEEDBACK_EXPORTER",
    "OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT",
    "OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING",
    "OTEL_PYTHON_FEEDBACK_JSONL_PATH",
    "OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE",
    "OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE",
    "OTEL_PYTHON_FEEDBACK_RETRY_FOR",
    "OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY",
    "OTEL_PYTHON_FEEDBACK_SPOOL_MAX_AGE",
    "OTEL_PYTHON_FEEDBACK_SPOOL_MAX_RECORDS",
    "OTEL_PYTHON_FEEDBACK_SPOOL_PATH",
    "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET",
    "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET_FALLBACKS",
    "OTLP_GRPC_PORT",
    "OTLP_HTTP_PORT",
    "PHOENIX_API_KEY",
    "PHOENIX_COLLECTOR_ENDPOINT",
    "PROTOCOLS",
    "SECRET_VARIABLES",
    "evaluation_sample_rate",
    "evaluator_references",
    "exporter_names",
    "follow_trace_sampling",
    "grpc_exporter_installed",
    "http_endpoint_beside_grpc",
    "jsonl_path",
    "langfuse_base_url",
    "langfuse_keys",
    "langsmith_api_key",
    "langsmith_endpoint",
    "langsmith_project",
    "mlflow_credentials",
    "mlflow_tracking_uri",
    "otlp_http_credential_provider_set",
    "otlp_logs_endpoint",
    "otlp_logs_headers",
    "otlp_logs_protocol",
    "otlp_traces_grpc_endpoint",
    "otlp_traces_protocol",
    "phoenix_api_key",
    "phoenix_endpoint",
    "sdk_disabled",
    "secret_is_set",
    "spool_path",
    "token_secret",
    "token_secret_fallbacks",
    "traces_exporter_name",
]

OTEL_PYTHON_FEEDBACK_EXPORTER: Final = "OTEL_PYTHON_FEEDBACK_EXPORTER"
"""Comma-separated feedback exporters: ``otlp``, ``console``, ``jsonl``, ``phoenix``,
``langsmith``, ``mlflow``, ``langfuse``, ``none``.

Default ``otlp``. ``none`` anywhere in the list means no exporter at all. Unknown names are
skipped with one warning; if none is left, the default is used.
"""

OTEL_PYTHON_FEEDBACK_JSONL_PATH: Final = "OTEL_PYTHON_FEEDBACK_JSONL_PATH"
"""The file the ``jsonl`` exporter appends to.

Default ``feedback.jsonl`` in the working directory.
"""

OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE: Final = "OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE"
"""Records held in memory at most, in the queue and in each exporter's backlog.

Its default, and the standard variable read after it, are in :mod:`otel_feedback._options`.
"""

OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE: Final = "OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE"
"""Records per export call at most.

Its default, and the standard variable read after it, are in :mod:`otel_feedback._options`.
"""

OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY: Final = "OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY"
"""Milliseconds a partial batch waits at most.

Its default, and the standard variable read after it, are in :mod:`otel_feedback._options`.
"""

OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT: Final = "OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT"
"""Milliseconds ``force_flush``, ``shutdown`` and the exit of the process wait at most.

Its default, and the standard variable read after it, are in :mod:`otel_feedback._options`.
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

OTEL_PYTHON_FEEDBACK_SPOOL_MAX_RECORDS: Final = "OTEL_PYTHON_FEEDBACK_SPOOL_MAX_RECORDS"
"""Rows the spool keeps at most (one per record and exporter).

Its default, and the standard variable read after it, are in :mod:`otel_feedback._options`.
"""

OTEL_PYTHON_FEEDBACK_SPOOL_MAX_AGE: Final = "OTEL_PYTHON_FEEDBACK_SPOOL_MAX_AGE"
"""Milliseconds a record may wait in the spool; older ones are dropped, counted.

Its default, and the standard variable read after it, are in :mod:`otel_feedback._options`.
"""

OTEL_PYTHON_FEEDBACK_RETRY_FOR: Final = "OTEL_PYTHON_FEEDBACK_RETRY_FOR"
"""Milliseconds records are held in memory for an endpoint that is down.

Its default, and the standard variable read after it, are in :mod:`otel_feedback._options`.
"""

OTEL_PYTHON_FEEDBACK_EVALUATORS: Final = "OTEL_PYTHON_FEEDBACK_EVALUATORS"
"""Online evaluators, comma-separated ``package.module:function`` references. Unset: none."""

OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE: Final = "OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE"
"""The share of traces the online evaluators judge, from 0 to 1 (by trace id). Default 1."""

PHOENIX_COLLECTOR_ENDPOINT: Final = "PHOENIX_COLLECTOR_ENDPOINT"
"""Phoenix's base URL for the ``phoenix`` exporter, as Phoenix's own client reads it."""

PHOENIX_API_KEY: Final = "PHOENIX_API_KEY"
"""Phoenix's API key for the ``phoenix`` exporter, as Phoenix's own client reads it."""

LANGSMITH_ENDPOINT: Final = "LANGSMITH_ENDPOINT"
"""LangSmith's API URL for the ``langsmith`` exporter, as the ``langsmith`` client reads it.

Default ``https://api.smith.langchain.com``.
"""

LANGSMITH_API_KEY: Final = "LANGSMITH_API_KEY"
"""LangSmith's API key (sent as ``x-api-key``), as the ``langsmith`` client reads it.

Never logged.
"""

LANGSMITH_PROJECT: Final = "LANGSMITH_PROJECT"
"""The LangSmith project whose id fills ``session_id``, as the ``langsmith`` client reads it.

Default ``default``, the client's default.
"""

MLFLOW_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"
"""The MLflow tracking server (``http://`` or ``https://``) for the ``mlflow`` exporter.

Default ``http://localhost:5000``.
"""

MLFLOW_TRACKING_TOKEN: Final = "MLFLOW_TRACKING_TOKEN"  # noqa: S105 - a variable's name
"""A bearer token for the MLflow server, as MLflow's client reads it. Never logged."""

MLFLOW_TRACKING_USERNAME: Final = "MLFLOW_TRACKING_USERNAME"
"""The basic-auth user for the MLflow server, as MLflow's client reads it."""

MLFLOW_TRACKING_PASSWORD: Final = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - a variable's name
"""The basic-auth password for the MLflow server, as MLflow's client reads it. Never logged."""

LANGFUSE_BASE_URL: Final = "LANGFUSE_BASE_URL"
"""Langfuse's URL for the ``langfuse`` exporter, as the ``langfuse`` client reads it.

Default ``LANGFUSE_HOST``, else ``https://cloud.langfuse.com``.
"""

LANGFUSE_HOST: Final = "LANGFUSE_HOST"
"""Langfuse's URL under its older name, read when ``LANGFUSE_BASE_URL`` is unset."""

LANGFUSE_PUBLIC_KEY: Final = "LANGFUSE_PUBLIC_KEY"
"""Langfuse's public key (the basic-auth user), as the ``langfuse`` client reads it."""

LANGFUSE_SECRET_KEY: Final = "LANGFUSE_SECRET_KEY"  # noqa: S105 - a variable's name
"""Langfuse's secret key (the basic-auth password), as the ``langfuse`` client reads it.

Never logged.
"""

PROTOCOL_HTTP_PROTOBUF: Final = "http/protobuf"
PROTOCOL_GRPC: Final = "grpc"
PROTOCOLS: Final = (PROTOCOL_HTTP_PROTOBUF, PROTOCOL_GRPC)
EXPORTER_NAMES: Final = ("otlp", "console", "jsonl", "phoenix", "langsmith", "mlflow", "langfuse")
SECRET_VARIABLES: Final = (
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_LOGS_HEADERS,
    PHOENIX_API_KEY,
    OTEL_PYTHON_FEEDBACK_TOKEN_SECRET,
    LANGSMITH_API_KEY,
    MLFLOW_TRACKING_TOKEN,
    MLFLOW_TRACKING_PASSWORD,
    LANGFUSE_SECRET_KEY,
)
"""Variables whose values are secrets: reported as set or unset, never shown."""
OTLP_GRPC_PORT: Final = 4317
"""The OTLP/gRPC port by convention."""
OTLP_HTTP_PORT: Final = 4318
"""The OTLP/HTTP port by convention: a receiver that takes gRPC on 4317 takes HTTP here."""
_DEFAULT_HTTP_LOGS_ENDPOINT: Final = "http://localhost:4318/v1/logs"
_DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
_NO_EXPORTER: Final = "none"
_DEFAULT_EXPORTERS: Final = ("otlp",)
_DEFAULT_JSONL_PATH: Final = "feedback.jsonl"
_DEFAULT_PHOENIX_ENDPOINT: Final = "http://localhost:6006"
_DEFAULT_LANGSMITH_ENDPOINT: Final = "https://api.smith.langchain.com"
_DEFAULT_LANGSMITH_PROJECT: Final = "default"
_DEFAULT_MLFLOW_TRACKING_URI: Final = "http://localhost:5000"
_DEFAULT_LANGFUSE_BASE_URL: Final = "https://cloud.langfuse.com"


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


def otlp_logs_endpoint() -> str:
    """Where the SDK's OTLP log exporter sends, resolved as it resolves it for the protocol.

    The signal's own variable is used as it is; the generic one gets ``/v1/logs`` appended
    for http/protobuf (and is used as it is for grpc).
    """
    specific = os.environ.get(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, "").strip()
    if specific:
        return specific
    generic = os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT, "").strip()
    if otlp_logs_protocol() == PROTOCOL_GRPC:
        return generic or _DEFAULT_GRPC_ENDPOINT
    if generic:
        return generic.rstrip("/") + "/v1/logs"
    return _DEFAULT_HTTP_LOGS_ENDPOINT


def otlp_traces_grpc_endpoint() -> str:
    """Where the SDK's OTLP/gRPC span exporter sends: the signal's variable, the generic one."""
    for name in (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT):
        raw = os.environ.get(name, "").strip()
        if raw:
            return raw
    return _DEFAULT_GRPC_ENDPOINT


def grpc_exporter_installed() -> bool:
    """Whether the SDK's OTLP/gRPC exporters can be imported (the ``grpc`` extra)."""
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None
    except ImportError:
        return False


def http_endpoint_beside_grpc(endpoint: str, path: str) -> str:
    """The OTLP/HTTP URL of the receiver that serves OTLP/gRPC at ``endpoint``.

    The scheme and host are kept (``http`` when the endpoint has none, as gRPC endpoints
    may be written), port 4317 becomes 4318 by the OTLP convention (any other port is kept),
    and ``path`` (``/v1/logs`` or ``/v1/traces``) is appended::

        http_endpoint_beside_grpc("http://collector:4317", "/v1/logs")
        # 'http://collector:4318/v1/logs'
    """
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    parts = urlsplit(endpoint)
    netloc = parts.netloc
    try:
        port = parts.port
    except ValueError:  # not a number: left as it is, for the exporter to report
        port = None
    if port == OTLP_GRPC_PORT:
        netloc = f"{netloc.rpartition(':')[0]}:{OTLP_HTTP_PORT}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + path, parts.query, ""))


def otlp_logs_headers() -> dict[str, str]:
    """The headers the SDK's OTLP log exporter sends (the signal's variable, else the generic).

    They often hold credentials: never log or print them.
    """
    for name in (OTEL_EXPORTER_OTLP_LOGS_HEADERS, OTEL_EXPORTER_OTLP_HEADERS):
        raw = os.environ.get(name, "").strip()
        if raw:
            return dict(parse_env_headers(raw, liberal=True))
    return {}


def secret_is_set(name: str) -> bool:
    """Whether the secret variable ``name`` has a value (the value itself is never read out)."""
    return bool(os.environ.get(name, "").strip())


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


def _read(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def langsmith_endpoint() -> str:
    """LangSmith's API URL."""
    return (_read(LANGSMITH_ENDPOINT) or _DEFAULT_LANGSMITH_ENDPOINT).rstrip("/")


def langsmith_api_key() -> str | None:
    """LangSmith's API key, or ``None``. Never logged."""
    return _read(LANGSMITH_API_KEY)


def langsmith_project() -> str:
    """The LangSmith project name."""
    return _read(LANGSMITH_PROJECT) or _DEFAULT_LANGSMITH_PROJECT


def mlflow_tracking_uri() -> str:
    """The MLflow tracking server's URL, as given (the exporter checks its scheme)."""
    return (_read(MLFLOW_TRACKING_URI) or _DEFAULT_MLFLOW_TRACKING_URI).rstrip("/")


def mlflow_credentials() -> tuple[str | None, tuple[str, str] | None]:
    """MLflow's bearer token and basic-auth pair, each ``None`` when unset. Never logged."""
    user, password = _read(MLFLOW_TRACKING_USERNAME), _read(MLFLOW_TRACKING_PASSWORD)
    return _read(MLFLOW_TRACKING_TOKEN), (user, password) if user and password else None


def langfuse_base_url() -> str:
    """Langfuse's URL: ``LANGFUSE_BASE_URL``, else ``LANGFUSE_HOST``, else Langfuse Cloud."""
    url = _read(LANGFUSE_BASE_URL) or _read(LANGFUSE_HOST) or _DEFAULT_LANGFUSE_BASE_URL
    return url.rstrip("/")


def langfuse_keys() -> tuple[str | None, str | None]:
    """Langfuse's public and secret keys, each ``None`` when unset. Never logged."""
    return _read(LANGFUSE_PUBLIC_KEY), _read(LANGFUSE_SECRET_KEY)


def spool_path() -> str | None:
    """The spool file, or ``None`` when spooling is off."""
    return os.environ.get(OTEL_PYTHON_FEEDBACK_SPOOL_PATH, "").strip() or None


def jsonl_path() -> str:
    """The file of the ``jsonl`` exporter."""
    return os.environ.get(OTEL_PYTHON_FEEDBACK_JSONL_PATH, "").strip() or _DEFAULT_JSONL_PATH


def evaluator_references() -> list[str]:
    """``OTEL_PYTHON_FEEDBACK_EVALUATORS``: the references, in order."""
    raw = os.environ.get(OTEL_PYTHON_FEEDBACK_EVALUATORS, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def evaluation_sample_rate() -> float:
    """``OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE``: a number from 0 to 1, default 1."""
    raw = os.environ.get(OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE, "").strip()
    if not raw:
        return 1.0
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        _bad_value(OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE, raw, "a number from 0 to 1", 1)
        return 1.0
    return rate
