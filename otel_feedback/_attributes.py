"""The names feedback travels under: one event name, the semconv attributes, and ours.

A feedback record rides a span event (and, when exported as a log, a log record) named
``gen_ai.evaluation.result``, the OpenTelemetry GenAI semantic conventions' evaluation event.
The semconv attributes carry what every GenAI-aware backend understands; everything else of
the record goes under the single ``otel_feedback.`` prefix so that nothing is lost.

No Python constants package ships these GenAI names, hence they are defined here, once.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTR_AGENT_NAME",
    "ATTR_COMMENT",
    "ATTR_COMPARATIVE_EXPERIMENT_ID",
    "ATTR_CORRECTION",
    "ATTR_ERROR",
    "ATTR_ERROR_TYPE",
    "ATTR_EVALUATION_TARGET",
    "ATTR_EXTRA",
    "ATTR_FEEDBACK_CONFIG",
    "ATTR_FEEDBACK_GROUP_ID",
    "ATTR_ID",
    "ATTR_KEY",
    "ATTR_LANGSMITH_RUN_ID",
    "ATTR_LANGSMITH_TRACE_ID",
    "ATTR_MODIFIED_AT",
    "ATTR_RESPONSE_ID",
    "ATTR_RUN_ID",
    "ATTR_SCORE",
    "ATTR_SCORE_LABEL",
    "ATTR_SCORE_VALUE",
    "ATTR_SESSION_ID",
    "ATTR_SOURCE_METADATA",
    "ATTR_SOURCE_TYPE",
    "ATTR_SOURCE_USER_ID",
    "ATTR_SPAN_KIND",
    "ATTR_START_TIME",
    "ATTR_TRACE_ID",
    "ATTR_TRUNCATED",
    "ATTR_VALUE",
    "ERROR_TYPE_OTHER",
    "EVENT_NAME",
    "PREFIX",
    "RUN_ATTRIBUTES",
    "SPAN_EVALUATION",
    "SPAN_KIND_EVALUATOR",
    "TRACE_EVALUATION",
]

EVENT_NAME: Final = "gen_ai.evaluation.result"
"""Name of the span event and of the log event that carry one feedback record."""

# --- GenAI semantic conventions -------------------------------------------------------------
ATTR_KEY: Final = "gen_ai.evaluation.name"
"""The feedback key (the metric's name), e.g. ``correctness``. Always present."""
ATTR_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
"""The score as a double, whatever its Python type (see :data:`ATTR_SCORE`)."""
ATTR_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
"""A string ``value`` (a categorical label such as ``"thumbs_up"``)."""
ATTR_COMMENT: Final = "gen_ai.evaluation.explanation"
"""The comment: a justification for the score, or a judge's reasoning."""
ATTR_ERROR_TYPE: Final = "error.type"
"""Present when the evaluation errored (``error=True``)."""
ERROR_TYPE_OTHER: Final = "_OTHER"
"""The semconv fallback value of ``error.type`` when no finer class is known."""

# --- ours: the rest of the record, losslessly ------------------------------------------------
PREFIX: Final = "otel_feedback."
ATTR_ID: Final = PREFIX + "id"
"""The feedback record's id (UUID string); receivers de-duplicate on it."""
ATTR_SCORE: Final = PREFIX + "score"
"""The score in its own type, only when it is a bool or an int.

The semconv score is a double, so ``True``, ``1`` and ``1.0`` would all read back as ``1.0``;
OTLP attribute values are typed, so this attribute keeps bool and int scores apart.
"""
ATTR_VALUE: Final = PREFIX + "value"
"""A non-string ``value`` as JSON (a string ``value`` is :data:`ATTR_SCORE_LABEL`)."""
ATTR_CORRECTION: Final = PREFIX + "correction"
"""The correction as JSON."""
ATTR_SOURCE_TYPE: Final = PREFIX + "source.type"
ATTR_SOURCE_METADATA: Final = PREFIX + "source.metadata"
"""``feedback_source.metadata`` as JSON."""
ATTR_SOURCE_USER_ID: Final = PREFIX + "source.user_id"
ATTR_SESSION_ID: Final = PREFIX + "session_id"
ATTR_COMPARATIVE_EXPERIMENT_ID: Final = PREFIX + "comparative_experiment_id"
ATTR_FEEDBACK_GROUP_ID: Final = PREFIX + "feedback_group_id"
ATTR_FEEDBACK_CONFIG: Final = PREFIX + "feedback_config"
"""The feedback config as JSON."""
ATTR_EXTRA: Final = PREFIX + "extra"
"""``extra`` as JSON."""
ATTR_ERROR: Final = PREFIX + "error"
"""The ``error`` flag as given (``error.type`` alone could not tell ``False`` from unset)."""
ATTR_START_TIME: Final = PREFIX + "start_time"
"""The evaluated run's start time, ISO 8601."""
ATTR_MODIFIED_AT: Final = PREFIX + "modified_at"
"""ISO 8601; only when it differs from ``created_at``, which is the event's own timestamp."""
ATTR_TRUNCATED: Final = PREFIX + "truncated"
"""``true`` when span limits (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``) cut a value of this event.

The exported record is whole all the same; the mark tells readers of the trace that the
event is not.
"""
ATTR_TRACE_ID: Final = PREFIX + "trace_id"
"""Target trace (32 hex digits); only when the event does not sit on the span it judges."""
ATTR_RUN_ID: Final = PREFIX + "run_id"
"""Target span (16 hex digits); only when the event does not sit on the span it judges."""

# --- the judged span's own correlation keys, copied onto the record ---------------------------
ATTR_RESPONSE_ID: Final = "gen_ai.response.id"
"""The judged model call's response id: the evaluation event's one key for log-only readers."""
ATTR_LANGSMITH_RUN_ID: Final = "langsmith.span.id"
"""A span's own LangSmith run id (a UUID), which LangSmith uses instead of the span id."""
ATTR_LANGSMITH_TRACE_ID: Final = "langsmith.trace.id"
"""A span's own LangSmith trace id (a UUID): the id of LangSmith's root run of the trace."""
ATTR_EVALUATION_TARGET: Final = "gen_ai.evaluation.target"
"""What was evaluated, by name: the judged span's agent (``gen_ai.agent.name``), else its name.

Not (yet) in the semantic conventions: pydantic-evals writes it on its
``gen_ai.evaluation.result`` log events (``pydantic_evals/_otel_emit.py``) and Logfire's live
evaluations group results by it.
"""
ATTR_AGENT_NAME: Final = "gen_ai.agent.name"
"""The GenAI semconv name of the agent a span runs: the evaluation target when present."""
RUN_ATTRIBUTES: Final = (
    ATTR_RESPONSE_ID,
    ATTR_LANGSMITH_RUN_ID,
    ATTR_LANGSMITH_TRACE_ID,
    ATTR_EVALUATION_TARGET,
)
"""The judged span's attributes that each record about it carries (``run_attributes``)."""

# --- OpenInference annotations (spec/annotations.md), on carrier spans -----------------------
ATTR_SPAN_KIND: Final = "openinference.span.kind"
SPAN_KIND_EVALUATOR: Final = "EVALUATOR"
SPAN_EVALUATION: Final = "evaluations.0.evaluation."
"""Prefix of a carrier's one span-scoped result: ``name``, ``score``, ``label``, ..."""
TRACE_EVALUATION: Final = "trace." + SPAN_EVALUATION
"""Prefix of a carrier's one trace-scoped result (feedback on a whole trace)."""
