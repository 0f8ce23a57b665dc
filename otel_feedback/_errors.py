"""The exceptions this package raises.

Hierarchy::

    ValueError
    └── InvalidFeedbackError    bad input to record_feedback(); names the field
        └── FeedbackTokenError  a feedback token or its secret was refused
"""

from __future__ import annotations

__all__ = ["FeedbackTokenError", "InvalidFeedbackError"]


class InvalidFeedbackError(ValueError):
    """A feedback argument was rejected.

    The message starts with the field's name and says what is wrong, e.g.
    ``score: must be finite, got nan``. The field is also kept in :attr:`field`.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FeedbackTokenError(InvalidFeedbackError):
    """A feedback token was refused, or no usable secret is configured.

    Refused tokens are garbled, truncated, tampered with, signed with another secret,
    expired, or used for a key they do not allow. The message never contains the secret.
    """
