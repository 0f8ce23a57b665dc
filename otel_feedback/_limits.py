"""The limits of a feedback record: refused beyond them, never cut."""

MAX_KEY_CHARS = 256
"""Longest feedback key."""
MAX_COMMENT_CHARS = 65_536
"""Longest comment or string value."""
MAX_JSON_CHARS = 262_144
"""Largest value, correction, extra or source_info, as JSON text."""

INT64_MIN = -(1 << 63)
"""Smallest integer score (OTLP carries integers as int64)."""
INT64_MAX = (1 << 63) - 1
"""Largest integer score."""
