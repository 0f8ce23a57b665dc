"""What the command prints never holds a secret: not a variable's value, not a URL's key.

Endpoints are often configured with a credential inside them (``user:password@`` or
``?api_key=...``), and exporters' reasons may quote the URL they tried. Everything shown is
passed through :func:`scrub`: URLs lose their user info and every query value, and the value
of every secret variable and configured header is replaced wherever it appears.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Final

from otel_feedback import _environment as env

__all__ = ["safe_url", "scrub"]

HIDDEN: Final = "***"
_URL: Final = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
# Shorter values are too likely to be ordinary words for a blind replacement to be safe;
# none of the secrets here is that short in practice.
_MIN_SECRET_CHARS: Final = 4


def safe_url(url: str) -> str:
    """``url`` without user info, query values or fragment; the rest as it is."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{parts.hostname or ''}" + (f":{port}" if port else "")
    query = "&".join(
        f"{name}={HIDDEN}" if value else name
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    if parts.query and not query:
        query = HIDDEN
    return urllib.parse.urlunsplit(
        parts._replace(netloc=netloc, query=query, fragment=HIDDEN if parts.fragment else "")
    )


def _secret_values() -> list[str]:
    values = [os.environ.get(name, "").strip() for name in env.SECRET_VARIABLES]
    values += list(env.otlp_logs_headers().values())
    for header in list(values):
        # "Bearer <token>": the token alone must go too.
        values += header.split()[1:]
    found = {v.strip() for v in values if len(v.strip()) >= _MIN_SECRET_CHARS}
    return sorted(found, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every URL made safe and every configured secret value hidden."""
    text = _URL.sub(lambda match: safe_url(match.group(0)), text)
    for secret in _secret_values():
        text = text.replace(secret, HIDDEN)
    return text
