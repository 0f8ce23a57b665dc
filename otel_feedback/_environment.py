"""Every environment variable this package reads: one constant each, and their readers.

A bad value is logged once, naming the variable and the value, and the default is used:
configuration never stops the application.
"""

from __future__ import annotations

import os
from typing import Final

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
)

from otel_feedback._log import warn_once

__all__ = [
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "otlp_logs_protocol",
]

PROTOCOL_HTTP_PROTOBUF: Final = "http/protobuf"
PROTOCOL_GRPC: Final = "grpc"
PROTOCOLS: Final = (PROTOCOL_HTTP_PROTOBUF, PROTOCOL_GRPC)


def otlp_logs_protocol() -> str:
    """The OTLP protocol for feedback records, as the SDK chooses it for logs.

    ``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
    ``http/protobuf``. ``http/json`` has no Python exporter; it falls back to the default.
    """
    for name in (OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL):
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        if raw.lower() in PROTOCOLS:
            return raw.lower()
        warn_once(
            f"env:{name}={raw}",
            "%s=%r is not one of %s; feedback records use %s",
            name,
            raw,
            ", ".join(PROTOCOLS),
            PROTOCOL_HTTP_PROTOBUF,
        )
        return PROTOCOL_HTTP_PROTOBUF
    return PROTOCOL_HTTP_PROTOBUF
