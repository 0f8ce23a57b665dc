"""JudgedRun: what an evaluator receives, one ended span read the same online and offline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from otel_feedback._evaluation.conventions import read_content
from otel_feedback._ids import (
    datetime_from_ns,
    span_hex,
    trace_hex,
    traceparent_of,
    uuid_from_span_id,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["JudgedRun", "RunEvent", "run_kind"]

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

# gen_ai.operation.name values (GenAI semantic conventions) and what kind of run each is.
_GEN_AI_OPERATION_KINDS: Final = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}
# traceloop.span.kind values (OpenLLMetry's decorators) and what kind of run each is.
_TRACELOOP_KINDS: Final = {
    "workflow": "chain",
    "task": "chain",
    "agent": "agent",
    "tool": "tool",
}


def run_kind(attributes: Mapping[str, Any]) -> str:
    """What a run does, from the attributes its instrumentation wrote.

    In order: OpenInference's ``openinference.span.kind`` (lowercased); the GenAI semantic
    conventions' ``gen_ai.operation.name`` (``chat``, ``text_completion`` and
    ``generate_content`` are ``"llm"``, ``embeddings`` is ``"embedding"``, ``execute_tool``
    ``"tool"``, ``invoke_agent`` and ``create_agent`` ``"agent"``); OpenLLMetry's
    ``traceloop.span.kind`` (``workflow`` and ``task`` are ``"chain"``, ``agent`` and ``tool``
    themselves) or its ``llm.request.type`` (``"llm"``); else ``"unknown"``.
    """
    kind = attributes.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        return kind.lower()
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _GEN_AI_OPERATION_KINDS:
        return _GEN_AI_OPERATION_KINDS[operation]
    traceloop = attributes.get("traceloop.span.kind")
    if isinstance(traceloop, str) and traceloop in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[traceloop]
    if isinstance(attributes.get("llm.request.type"), str):
        return "llm"
    return "unknown"


def run_error(status: str, description: str | None, events: Sequence[RunEvent]) -> str | None:
    """Why a run failed.

    Its status description when its status is ERROR, else the message of its last
    ``exception`` event, else None.
    """
    if status == "error" and description:
        return description
    for event in reversed(events):
        if event.name == "exception":
            message = event.attributes.get("exception.message")
            if isinstance(message, str):
                return message
    return None


def read_only(attributes: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of attributes (one shared empty mapping for none)."""
    return MappingProxyType(dict(attributes)) if attributes else _EMPTY


class _ResourceCache:
    """The last resource read and its attributes' copy.

    A provider's spans share one immutable resource: copying its attributes once, not for
    every span, saves a few microseconds per span.
    """

    last: tuple[object, Mapping[str, Any]] = (None, _EMPTY)

    @classmethod
    def attributes_of(cls, resource: Any) -> Mapping[str, Any]:
        # One tuple, read and replaced whole: threads reading spans at once see a consistent
        # pair (at worst they copy the same resource twice).
        last_resource, attributes = cls.last
        if resource is not last_resource:
            attributes = read_only(resource.attributes if resource is not None else None)
            cls.last = (resource, attributes)
        return attributes


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One span event of the judged run."""

    name: str
    time: datetime | None
    attributes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class JudgedRun:
    """The run an evaluator judges: an ended span, with its inputs and outputs read.

    Built from a span that ended in this process (online evaluation) or from a span stored as
    OTLP JSON (``otel-feedback evaluate``); both read the same way.
    """

    name: str
    trace_id: int
    """The OpenTelemetry trace id (what ``record_feedback(trace_id=...)`` takes)."""
    span_id: int
    """The OpenTelemetry span id: the run id."""
    parent_span_id: int | None
    kind: str
    """What the run does: ``"llm"``, ``"chain"``, ``"tool"``, ``"agent"``, ``"retriever"``,
    ``"embedding"``, ``"reranker"``, ``"guardrail"``, ``"evaluator"``, or ``"unknown"``."""
    span_kind: str
    """The OpenTelemetry span kind: ``"internal"``, ``"server"``, ``"client"``, ..."""
    status: str
    """``"unset"``, ``"ok"`` or ``"error"``."""
    error: str | None
    """The error's description when the run failed."""
    start_time: datetime | None
    end_time: datetime | None
    attributes: Mapping[str, Any]
    events: tuple[RunEvent, ...]
    resource: Mapping[str, Any]
    scope: str | None
    """The instrumentation scope that made the span."""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    convention: str | None = None
    """Which convention the inputs and outputs were read from: ``"gen_ai"``,
    ``"openinference"``, ``"openllmetry"``, or None."""
    input_text: str | None = None
    """The run's input as text: the last user message, or the input value."""
    output_text: str | None = None
    """The run's output as text: the last output message, or the output value."""

    @property
    def id(self) -> UUID:
        """The run id as LangSmith writes it (the span id as a UUID)."""
        return uuid_from_span_id(self.span_id)

    @property
    def traceparent(self) -> str:
        """The run as a W3C ``traceparent`` value."""
        return traceparent_of(self.trace_id, self.span_id, sampled=True)

    @classmethod
    def from_span(cls, span: ReadableSpan) -> JudgedRun:
        """The run of an ended OpenTelemetry SDK span, its inputs and outputs read.

        Cheap enough for every span an online evaluator sees (a few microseconds for an LLM
        span, more with large JSON messages to parse): the attributes are copied once, the
        resource's attributes once per resource.

        Raises:
            ValueError: for a span without a valid span context.
        """
        context = span.context
        if context is None or not context.is_valid:
            raise ValueError(f"span {span.name!r}: no valid span context")
        attributes = read_only(span.attributes)
        events = tuple(
            RunEvent(
                event.name,
                datetime_from_ns(event.timestamp) if event.timestamp else None,
                read_only(event.attributes),
            )
            for event in span.events
        )
        status = span.status.status_code.name.lower()
        parent = span.parent
        start, end = span.start_time, span.end_time
        scope = span.instrumentation_scope
        content = read_content(attributes, events)
        return cls(
            name=span.name,
            trace_id=context.trace_id,
            span_id=context.span_id,
            parent_span_id=parent.span_id if parent is not None and parent.span_id else None,
            kind=run_kind(attributes),
            span_kind=span.kind.name.lower(),
            status=status,
            error=run_error(status, span.status.description, events),
            start_time=datetime_from_ns(start) if start else None,
            end_time=datetime_from_ns(end) if end else None,
            attributes=attributes,
            events=events,
            resource=_ResourceCache.attributes_of(span.resource),
            scope=(scope.name or None) if scope is not None else None,
            inputs=content.inputs,
            outputs=content.outputs,
            convention=content.convention,
            input_text=content.input_text,
            output_text=content.output_text,
        )

    def __repr__(self) -> str:
        return (
            f"JudgedRun(name={self.name!r}, kind={self.kind!r}, "
            f"trace_id={trace_hex(self.trace_id)!r}, span_id={span_hex(self.span_id)!r})"
        )
