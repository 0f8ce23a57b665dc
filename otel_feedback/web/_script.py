"""The browser module's bytes and validator, read once from the package."""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import Final

__all__ = ["SCRIPT", "SCRIPT_ETAG"]

SCRIPT: Final = files("otel_feedback.web").joinpath("feedback.js").read_bytes()
# A strong validator from the content: it changes exactly when the module does.
SCRIPT_ETAG: Final = f'"{hashlib.sha256(SCRIPT).hexdigest()[:32]}"'
