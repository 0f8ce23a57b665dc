"""Evaluators: plain callables, sync or async, each under a name that stays the same.

An evaluator's name is the span name of its runs (``evaluate <name>``) and part of the id of
every result it gives: a name that changed between two runs would add feedback rather than
update it. It is the key of a mapping of evaluators when one is given, else the callable's
``__name__`` (a ``functools.partial``'s function's, a callable object's class's).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otel_feedback._evaluation.judged import JudgedRun

__all__ = ["Evaluator", "EvaluatorFunction", "EvaluatorsLike", "evaluators_of", "load_evaluator"]

EvaluatorFunction = Callable[[JudgedRun], Any]
EvaluatorsLike = Iterable[EvaluatorFunction] | Mapping[str, EvaluatorFunction]
"""A list of evaluators, or a mapping from the name each is known by to the evaluator."""


@dataclass(frozen=True, slots=True)
class Evaluator:
    """One evaluator and the name it goes by."""

    name: str
    function: EvaluatorFunction
    is_async: bool


def evaluators_of(evaluators: object, *, argument: str = "evaluators") -> tuple[Evaluator, ...]:
    """The evaluators, named; ``ValueError`` naming ``argument`` when they are not usable."""
    if isinstance(evaluators, str | bytes) or not isinstance(evaluators, Iterable | Mapping):
        raise ValueError(
            f"{argument}: must be a list of callables or a mapping of names to callables, got "
            f"{type(evaluators).__name__}"
        )
    pairs: list[tuple[str, object]]
    if isinstance(evaluators, Mapping):
        pairs = [(_checked_name(name, argument), function) for name, function in evaluators.items()]
    else:
        pairs = [(_name_of(function), function) for function in evaluators]
    if not pairs:
        raise ValueError(f"{argument}: no evaluator given")
    named: dict[str, Evaluator] = {}
    for name, function in pairs:
        if not callable(function):
            raise ValueError(f"{argument}: {name!r} is not callable ({type(function).__name__})")
        if name in named:
            raise ValueError(
                f"{argument}: two evaluators are named {name!r}; the name is part of each "
                "result's id: give them as a mapping {name: evaluator}"
            )
        named[name] = Evaluator(name, function, _is_async(function))
    return tuple(named.values())


def load_evaluator(reference: str, *, argument: str) -> tuple[str, EvaluatorFunction]:
    """The callable ``reference`` names (``package.module:function``), and its name.

    Raises:
        ValueError: naming ``argument``, the reference and why it cannot be used.
    """
    module_name, sep, attribute = reference.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{argument}: {reference!r} is not of the form package.module:function")
    try:
        found: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - any import may raise anything
        raise ValueError(
            f"{argument}: cannot import {module_name!r} ({type(error).__name__}: {error})"
        ) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(f"{argument}: {module_name!r} has no {attribute!r}") from None
    if not callable(found):
        raise ValueError(f"{argument}: {reference!r} is not callable")
    return attribute.rpartition(".")[2], found


def _name_of(function: object) -> str:
    target = function
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__name__", None)
    if not isinstance(name, str):
        name = type(target).__name__
    return name


def _checked_name(name: object, argument: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"{argument}: an evaluator's name must be a non-empty string, got {name!r}"
        )
    return name


def _is_async(function: object) -> bool:
    target = function
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - an object's own async __call__
    )
