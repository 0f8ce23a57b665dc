"""The spool's errors, apart so that the modules that open its file can raise them too."""

from __future__ import annotations

__all__ = ["SpoolError", "SpoolFullError"]


class SpoolError(Exception):
    """The spool file cannot be used; the message says why."""


class SpoolFullError(Exception):
    """The spool holds ``max_records`` rows: nothing more is written until some leave."""
