"""Who gave a piece of feedback, in the words each backend uses for it."""

from __future__ import annotations

from typing import Final

__all__ = ["annotator_kind"]

_HUMAN_SOURCES: Final = frozenset({"app", "human", "user", "reviewer", "annotator"})
_LLM_SOURCES: Final = frozenset({"model", "llm", "judge"})


def annotator_kind(source_type: str | None) -> str:
    """HUMAN for people, LLM for model judges, CODE for programmatic evaluators and APIs."""
    kind = (source_type or "").lower()
    if kind in _HUMAN_SOURCES:
        return "HUMAN"
    if kind in _LLM_SOURCES:
        return "LLM"
    return "CODE"
