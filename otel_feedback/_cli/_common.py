"""What every subcommand shares: exit codes, consoles, and parsing of scores and ids."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import click
from rich.console import Console
from rich.text import Text

from otel_feedback import _environment as env
from otel_feedback._cli._deadline import Deadline
from otel_feedback._options import processor_options

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "SCORE",
    "Settings",
    "command_deadline",
    "err_console",
    "notice",
    "out_console",
    "parse_score",
    "verbose",
]

EXIT_OK: Final = 0
"""Everything was done: every record delivered, every check passed."""
EXIT_REFUSED: Final = 1
"""Something was refused or could not be delivered, or a check found a problem."""
EXIT_USAGE: Final = 2
"""The command line or its input was wrong (click's own code for usage errors)."""

# Results go to stdout so that scripts can read them; progress and problems go to stderr.
out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def notice(message: str) -> None:
    """Say on stderr what the command is doing or waiting for (data, never markup)."""
    err_console.print(Text(message, style="dim"))


def command_deadline(timeout_s: float | None) -> Deadline:
    """The deadline of ``--timeout``; without it, ``OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT``."""
    if timeout_s is None:
        timeout_s = processor_options().export_timeout_millis / 1000
        variable = env.OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT
        origin = f"{timeout_s:g} s from {variable}; --timeout sets another"
        return Deadline(timeout_s, origin=origin)
    return Deadline(timeout_s)


@dataclass(frozen=True)
class Settings:
    """The options of the command itself, for its subcommands (``ctx.obj``)."""

    verbose: bool = False


def verbose(ctx: click.Context) -> bool:
    """Whether ``--verbose`` was given to the command."""
    settings = ctx.find_object(Settings)
    return settings is not None and settings.verbose


_BOOLEANS: Final = {"true": True, "false": False}


def parse_score(text: str) -> bool | int | float:
    """A score as typed: ``true``/``false``, an integer, or a finite float.

    Raises:
        ValueError: anything else, with the reason.
    """
    lowered = text.strip().lower()
    if lowered in _BOOLEANS:
        return _BOOLEANS[lowered]
    try:
        return int(lowered)
    except ValueError:
        pass
    try:
        number = float(lowered)
    except ValueError:
        raise ValueError(f"must be a number, true or false, got {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"must be finite, got {text!r}")
    return number


class _Score(click.ParamType):  # type: ignore[type-arg]
    name = "score"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> bool | int | float:
        if isinstance(value, bool | int | float):
            return value
        try:
            return parse_score(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


SCORE: Final = _Score()


MAX_SECONDS: Final = 86_400.0
"""The longest any bound of the command may be (a day): a longer one is a wait without end."""


class Finite(click.FloatRange):
    """A number in a range that is finite: nan and inf are no seconds and no rate."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


SECONDS: Final = Finite(min=0, min_open=True, max=MAX_SECONDS)
"""Seconds of a bound: more than 0, at most a day, finite."""
