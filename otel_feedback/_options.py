"""The options of :class:`FeedbackSpanProcessor`: one table, and how each is resolved.

Each option is one row: the keyword argument, our variable, the SDK's standard variable
(``OTEL_BLRP_*``) where there is one, the default and its unit. Validation, the defaults
and the README's table come from it, and tests hold the processor's docstring and the
README to it.

Resolution, per option: the argument, else our variable, else the standard one, else the
default. Feedback leaves as OTLP logs, so the batch log record processor's variables are the
natural knobs; ours come first so that feedback can be tuned apart from the application's own
logs. A bad argument raises ``ValueError`` naming it; a bad variable is logged once, naming
it and its value, and the default is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from opentelemetry.sdk.environment_variables import (
    OTEL_BLRP_EXPORT_TIMEOUT,
    OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BLRP_MAX_QUEUE_SIZE,
    OTEL_BLRP_SCHEDULE_DELAY,
)

from otel_feedback import _environment as env
from otel_feedback._log import warn_once

__all__ = ["PROCESSOR_OPTIONS", "Option", "ProcessorOptions", "markdown_rows", "processor_options"]


@dataclass(frozen=True)
class Option:
    """One option of the processor."""

    name: str
    variable: str
    standard: str | None
    default: int
    unit: str
    meaning: str


PROCESSOR_OPTIONS: tuple[Option, ...] = (
    Option(
        "max_queue_size",
        env.OTEL_PYTHON_FEEDBACK_MAX_QUEUE_SIZE,
        OTEL_BLRP_MAX_QUEUE_SIZE,
        16_384,
        "records",
        "records held in memory at most, in the queue and in each exporter's backlog",
    ),
    Option(
        "max_export_batch_size",
        env.OTEL_PYTHON_FEEDBACK_MAX_EXPORT_BATCH_SIZE,
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
        512,
        "records",
        "records per export at most (clamped to the queue size)",
    ),
    Option(
        "schedule_delay_millis",
        env.OTEL_PYTHON_FEEDBACK_SCHEDULE_DELAY,
        OTEL_BLRP_SCHEDULE_DELAY,
        1_000,
        "milliseconds",
        "how long a partial batch waits at most (with a spool, records are taken in at once)",
    ),
    Option(
        "export_timeout_millis",
        env.OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT,
        OTEL_BLRP_EXPORT_TIMEOUT,
        30_000,
        "milliseconds",
        "how long `force_flush`, `shutdown` and the exit of the process wait at most, for "
        "everything; also the bound on `otel-feedback record` and `import`",
    ),
    Option(
        "retry_for_millis",
        env.OTEL_PYTHON_FEEDBACK_RETRY_FOR,
        None,
        300_000,
        "milliseconds",
        "how long records are held in memory for an endpoint that is down (or not ready for "
        "them); then dropped, or left in the spool",
    ),
    Option(
        "spool_max_records",
        env.OTEL_PYTHON_FEEDBACK_SPOOL_MAX_RECORDS,
        None,
        100_000,
        "rows",
        "rows the spool keeps at most (one per record and exporter); past it, records wait "
        "in memory",
    ),
    Option(
        "spool_max_age_millis",
        env.OTEL_PYTHON_FEEDBACK_SPOOL_MAX_AGE,
        None,
        7 * 24 * 3600 * 1000,
        "milliseconds",
        "how long a record may wait in the spool; older ones are dropped, counted",
    ),
)


@dataclass(frozen=True)
class ProcessorOptions:
    """The options of FeedbackSpanProcessor, resolved (the defaults are the table's)."""

    max_queue_size: int = PROCESSOR_OPTIONS[0].default
    max_export_batch_size: int = PROCESSOR_OPTIONS[1].default
    schedule_delay_millis: float = PROCESSOR_OPTIONS[2].default
    export_timeout_millis: float = PROCESSOR_OPTIONS[3].default
    retry_for_millis: float = PROCESSOR_OPTIONS[4].default
    spool_max_records: int = PROCESSOR_OPTIONS[5].default
    spool_max_age_millis: float = PROCESSOR_OPTIONS[6].default


assert [f.name for f in fields(ProcessorOptions)] == [o.name for o in PROCESSOR_OPTIONS]


def processor_options(**arguments: float | None) -> ProcessorOptions:
    """Each option: the argument, else our variable, else the standard one, else the default.

    Raises:
        ValueError: an argument that is not a positive number, or a batch larger than the
            queue (both given as arguments).
    """
    resolved: dict[str, float] = {}
    source: dict[str, str] = {}
    for option in PROCESSOR_OPTIONS:
        value = arguments.pop(option.name, None)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{option.name}: must be positive, got {value!r}")
            resolved[option.name], source[option.name] = value, option.name
            continue
        resolved[option.name], source[option.name] = _from_environment(option)
    if arguments:
        raise TypeError(f"unknown processor options: {', '.join(sorted(arguments))}")
    queue, batch = resolved["max_queue_size"], resolved["max_export_batch_size"]
    if batch > queue:
        given = source["max_export_batch_size"]
        if given == "max_export_batch_size" and source["max_queue_size"] == "max_queue_size":
            raise ValueError(
                f"max_export_batch_size: must not exceed max_queue_size ({queue:g}), got {batch:g}"
            )
        if given != "default":  # a default larger than a small queue is fitted silently
            _bad_value(given, str(int(batch)), f"at most the queue size {int(queue)}", int(queue))
        resolved["max_export_batch_size"] = queue
    return ProcessorOptions(
        max_queue_size=int(resolved["max_queue_size"]),
        max_export_batch_size=int(resolved["max_export_batch_size"]),
        schedule_delay_millis=resolved["schedule_delay_millis"],
        export_timeout_millis=resolved["export_timeout_millis"],
        retry_for_millis=resolved["retry_for_millis"],
        spool_max_records=int(resolved["spool_max_records"]),
        spool_max_age_millis=resolved["spool_max_age_millis"],
    )


def _from_environment(option: Option) -> tuple[int, str]:
    """The option's value from our variable or the standard one, and which; else the default."""
    for name in (option.variable, option.standard):
        raw = os.environ.get(name, "").strip() if name else ""
        if not name or not raw:
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value > 0:
            return value, name
        _bad_value(name, raw, "a positive integer", option.default)
        return option.default, "default"
    return option.default, "default"


def _bad_value(name: str, raw: str, expected: str, default: object) -> None:
    warn_once(f"env:{name}={raw}", "%s=%r is not %s; using %s", name, raw, expected, default)


def markdown_rows() -> list[str]:
    """The README's rows for these options: variable, meaning, default."""
    rows = []
    for option in PROCESSOR_OPTIONS:
        default = f"{option.default} {option.unit}"
        if option.standard:
            default = f"`{option.standard}`, else {default}"
        rows.append(f"| `{option.variable}` | {option.meaning} | {default} |")
    return rows
