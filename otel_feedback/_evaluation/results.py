"""What an evaluator returned, read as LangSmith's evaluation results.

LangSmith's evaluators return an ``EvaluationResult`` (a dict with ``key`` and any of
``score``, ``value``, ``comment``, ``correction``, ...), a list of them, or
``EvaluationResults`` (``{"results": [...]}``); its ``evaluate()`` also takes a bare
``bool``, number or string, named after the evaluator. All of these are read here, and
``None`` says the evaluator had nothing to say about this run. LangSmith's own
``EvaluationResult`` objects (pydantic models) are read as their dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_RESULTS", "BadResultError", "Result", "results_of"]

MAX_RESULTS = 100
"""Results one evaluation may give; more is an evaluator's bug, reported as its error."""

# The fields of LangSmith's EvaluationResult this library records, by the record argument
# each becomes. ``evaluator_info`` joins the source's metadata, as LangSmith stores it.
_FIELDS = frozenset(
    {"key", "score", "value", "comment", "correction", "feedback_config", "extra", "evaluator_info"}
)
# Fields LangSmith's models carry that say nothing a record here could hold: the run ids are
# this library's to set (the judged span and the evaluator's span).
_IGNORED = frozenset({"source_run_id", "target_run_id", "metadata"})


class BadResultError(ValueError):
    """An evaluator returned something that is not an evaluation result; names where."""


@dataclass(frozen=True, slots=True)
class Result:
    """One evaluation result, its fields as :func:`record_feedback` takes them."""

    key: str
    fields: Mapping[str, Any]


def results_of(returned: object, *, evaluator: str) -> list[Result]:
    """The results in what ``evaluator`` returned (none for ``None``).

    Raises:
        BadResultError: naming the result and field that are wrong, and why.
    """
    if returned is None:
        return []
    if isinstance(returned, bool | int | float):
        return [Result(evaluator, {"score": returned})]
    if isinstance(returned, str):
        return [Result(evaluator, {"value": returned})]
    plain = _as_mapping(returned)
    if plain is not None and "results" in plain and "key" not in plain:
        items = plain["results"]
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise BadResultError(f"results: must be a list, got {type(items).__name__}")
        return _each(items, where="results")
    if plain is not None:
        return [_one(plain, where="result")]
    if isinstance(returned, Sequence) and not isinstance(returned, bytes):
        return _each(returned, where="result")
    raise BadResultError(
        f"result: must be a dict with a 'key', a list of them, {{'results': [...]}}, a bool, a "
        f"number, a string or None, got {type(returned).__name__}"
    )


def _each(items: Sequence[Any], *, where: str) -> list[Result]:
    if len(items) > MAX_RESULTS:
        raise BadResultError(f"{where}: {len(items)} results, more than {MAX_RESULTS}")
    results: list[Result] = []
    keys: set[str] = set()
    for index, item in enumerate(items):
        plain = _as_mapping(item)
        if plain is None:
            raise BadResultError(
                f"{where}[{index}]: must be a dict with a 'key', got {type(item).__name__}"
            )
        result = _one(plain, where=f"{where}[{index}]")
        if result.key in keys:
            # Both would have the same id: a receiver keeping one record per id keeps one.
            raise BadResultError(f"{where}[{index}].key: {result.key!r:.80} is given twice")
        keys.add(result.key)
        results.append(result)
    return results


def _one(result: Mapping[str, Any], *, where: str) -> Result:
    key = result.get("key")
    if not isinstance(key, str) or not key:
        raise BadResultError(
            f"{where}.key: must be a non-empty string, got {type(key).__name__}"
            if not isinstance(key, str)
            else f"{where}.key: must be a non-empty string, got ''"
        )
    unknown = [name for name in result if name not in _FIELDS | _IGNORED]
    if unknown:
        name = unknown[0]
        shown = name[:80] if isinstance(name, str) else f"<a {type(name).__name__} key>"
        raise BadResultError(
            f"{where}.{shown}: not a field of an evaluation result (key, score, value, "
            "comment, correction, feedback_config, extra, evaluator_info)"
        )
    fields = {
        name: value
        for name, value in result.items()
        if name in _FIELDS and name != "key" and value is not None
    }
    info = fields.pop("evaluator_info", None)
    if info is not None and not isinstance(info, Mapping):
        raise BadResultError(f"{where}.evaluator_info: must be a dict, got {type(info).__name__}")
    if info:
        fields["source_info"] = dict(info)
    return Result(key, fields)


def _as_mapping(value: object) -> Mapping[str, Any] | None:
    """A dict, or a pydantic model's dict (LangSmith's EvaluationResult), else None."""
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump()
        return dumped if isinstance(dumped, Mapping) else None
    return None
