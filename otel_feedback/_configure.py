"""configure(): the wiring that code-first users call and the instrumentor shares."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from otel_feedback import _environment as env
from otel_feedback._evaluation.evaluators import (
    Evaluator,
    EvaluatorFunction,
    EvaluatorsLike,
    evaluators_of,
    load_evaluator,
)
from otel_feedback._evaluation.online import OnlineEvaluationProcessor, checked_rate
from otel_feedback._export.base import FeedbackExporter
from otel_feedback._export.console import ConsoleFeedbackExporter
from otel_feedback._export.jsonl import JsonlFeedbackExporter
from otel_feedback._export.langfuse import LangfuseFeedbackExporter
from otel_feedback._export.langsmith import LangSmithFeedbackExporter
from otel_feedback._export.mlflow import MLflowFeedbackExporter
from otel_feedback._export.otlp import OTLPFeedbackExporter
from otel_feedback._export.phoenix import PhoenixFeedbackExporter
from otel_feedback._export.processor import FeedbackSpanProcessor
from otel_feedback._log import logger, warn_once
from otel_feedback._recording.unsampled import watch

__all__ = ["attach", "configure", "exporters_from_names"]

ExporterSpec = str | FeedbackExporter

# One processor per provider: configure() and the instrumentor may both run, and users may
# call either twice.
_attached: weakref.WeakKeyDictionary[TracerProvider, FeedbackSpanProcessor] = (
    weakref.WeakKeyDictionary()
)
_evaluating: weakref.WeakKeyDictionary[TracerProvider, OnlineEvaluationProcessor] = (
    weakref.WeakKeyDictionary()
)
_attach_lock = threading.Lock()


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    exporters: Sequence[ExporterSpec] | None = None,
    evaluators: EvaluatorsLike | None = None,
    evaluation_sample_rate: float | None = None,
) -> FeedbackSpanProcessor | None:
    """Export feedback from ``tracer_provider``, wired from the environment. Idempotent.

    With no ``tracer_provider``, the global one is used; when no SDK TracerProvider is set
    yet, one is created from the standard variables (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, OTLP traces per ``OTEL_TRACES_EXPORTER`` and
    ``OTEL_EXPORTER_OTLP_*``) and set as the global provider, so two lines set up a program::

        import otel_feedback
        otel_feedback.configure()

    Args:
        tracer_provider: the SDK provider whose spans carry feedback.
        exporters: exporter names (``"otlp"``, ``"console"``, ``"jsonl"``, ``"phoenix"``,
            ``"langsmith"``, ``"mlflow"``, ``"langfuse"``) or exporter objects; default
            ``OTEL_PYTHON_FEEDBACK_EXPORTER``.
        evaluators: online evaluators (see :class:`OnlineEvaluationProcessor`); default
            ``OTEL_PYTHON_FEEDBACK_EVALUATORS``. One OnlineEvaluationProcessor is added.
        evaluation_sample_rate: the share of traces they judge; default
            ``OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE``, else 1.

    Returns:
        The processor added (or added before), or ``None`` when ``OTEL_SDK_DISABLED`` is true
        or no exporter is chosen.

    Raises:
        ValueError: an unknown exporter name in ``exporters``, or unusable ``evaluators``.
    """
    if env.sdk_disabled():
        return None
    # Checked before anything is set or added: a bad argument leaves everything as it was.
    named = None if evaluators is None else evaluators_of(evaluators)
    rate = None
    if evaluation_sample_rate is not None:
        rate = checked_rate(evaluation_sample_rate, "evaluation_sample_rate")
    provider = tracer_provider if tracer_provider is not None else _global_sdk_provider()
    made = provider is None
    if provider is None:
        provider = _provider_from_environment()
    processor = _attach_export(provider, exporters)  # raises for an unknown exporter name
    # The arguments win; each one not given comes from its variable.
    _attach_evaluation(provider, named, rate, exporting=processor is not None)
    if made:
        trace.set_tracer_provider(provider)
        watch(provider)  # the traces its sampler drops, for their feedback
    return processor


def attach(
    provider: TracerProvider, exporters: Sequence[ExporterSpec] | None = None
) -> FeedbackSpanProcessor | None:
    """Add one FeedbackSpanProcessor to ``provider`` unless it has one from here already.

    The evaluators ``OTEL_PYTHON_FEEDBACK_EVALUATORS`` names are added with it (zero-code).
    """
    processor = _attach_export(provider, exporters)
    if processor is not None:
        _attach_evaluation(provider, None, None, exporting=True)
    return processor


def _attach_export(
    provider: TracerProvider, exporters: Sequence[ExporterSpec] | None
) -> FeedbackSpanProcessor | None:
    """Add one FeedbackSpanProcessor to ``provider`` unless it has one from here already."""
    with _attach_lock:
        existing = _attached.get(provider)
        if existing is not None:
            logger.debug("Feedback export is already set up on %r", provider)
            return existing
        chosen = _exporters(exporters, provider.resource)
        if not chosen:
            logger.debug("No feedback exporter chosen; feedback stays on the span events")
            return None
        processor = FeedbackSpanProcessor(chosen)  # its options from the environment
        provider.add_span_processor(processor)
        _attached[provider] = processor
    return processor


def _attach_evaluation(
    provider: TracerProvider,
    named: tuple[Evaluator, ...] | None,
    rate: float | None,
    *,
    exporting: bool,
) -> None:
    """Add one OnlineEvaluationProcessor to ``provider``, from the arguments or the environment."""
    if named is None:
        named = _evaluators_from_environment()
        if not named:
            return
    with _attach_lock:
        if provider in _evaluating:
            logger.debug("Online evaluation is already set up on %r", provider)
            return
        processor = OnlineEvaluationProcessor(
            {evaluator.name: evaluator.function for evaluator in named},
            sample_rate=env.evaluation_sample_rate() if rate is None else rate,
            tracer_provider=provider,
        )
        provider.add_span_processor(processor)
        _evaluating[provider] = processor
    if not exporting:
        warn_once(
            "evaluation without export",
            "Online evaluators are set up but no feedback exporter is: their results stay on "
            "the evaluator spans' events (set OTEL_PYTHON_FEEDBACK_EXPORTER)",
        )


def _evaluators_from_environment() -> tuple[Evaluator, ...]:
    """The evaluators ``OTEL_PYTHON_FEEDBACK_EVALUATORS`` names; one that fails is logged."""
    loaded: dict[str, EvaluatorFunction] = {}
    for reference in env.evaluator_references():
        try:
            name, function = load_evaluator(reference, argument=env.OTEL_PYTHON_FEEDBACK_EVALUATORS)
        except ValueError as error:
            warn_once(f"evaluator {reference}", "%s; it is not used", error)
            continue
        loaded.setdefault(name, function)
    return evaluators_of(loaded) if loaded else ()


def detach(provider: TracerProvider) -> None:
    """Stop the processor set up on ``provider`` here (the SDK cannot remove it)."""
    with _attach_lock:
        processor = _attached.pop(provider, None)
    if processor is not None:
        processor.shutdown()


def _global_sdk_provider() -> TracerProvider | None:
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def _exporters(specs: Sequence[ExporterSpec] | None, resource: Resource) -> list[FeedbackExporter]:
    if specs is None:
        return exporters_from_names(env.exporter_names(), resource)
    if isinstance(specs, str):
        specs = [specs]
    built: list[FeedbackExporter] = []
    for spec in specs:
        if isinstance(spec, FeedbackExporter):
            built.append(spec)
        elif spec == "none":
            continue
        elif spec in _FACTORIES:
            built.extend(exporters_from_names((spec,), resource))
        else:
            names = ", ".join((*_FACTORIES, "none"))
            raise ValueError(f"exporters: unknown exporter {spec!r}; expected one of {names}")
    return built


def exporters_from_names(names: Sequence[str], resource: Resource) -> list[FeedbackExporter]:
    """Build the exporters called ``names``; one that fails to build is skipped and logged."""
    built: list[FeedbackExporter] = []
    for name in names:
        try:
            built.append(_FACTORIES[name](resource))
        except ImportError as missing:
            # An optional dependency, named with its extra: one line, no traceback.
            warn_once(f"missing:{name}", "No %r feedback exporter: %s", name, missing)
        except Exception:  # noqa: BLE001 - a bad exporter setting must not stop the app
            logger.warning("Could not create the %r feedback exporter", name, exc_info=True)
    return built


def _otlp_feedback_exporter(resource: Resource) -> OTLPFeedbackExporter:
    """The OTLP exporter the environment asks for; over HTTP beside it if gRPC is missing.

    opentelemetry-distro makes gRPC the default protocol, and the gRPC exporter is an extra:
    rather than lose every record, feedback goes over OTLP/HTTP to the same receiver's HTTP
    port, said once at start-up with the install command.
    """
    try:
        return OTLPFeedbackExporter(resource=resource)
    except ImportError:
        if env.otlp_logs_protocol() != env.PROTOCOL_GRPC:
            raise
    endpoint = env.http_endpoint_beside_grpc(env.otlp_logs_endpoint(), "/v1/logs")
    _warn_grpc_missing("feedback", endpoint)
    return OTLPFeedbackExporter(
        protocol=env.PROTOCOL_HTTP_PROTOBUF, endpoint=endpoint, resource=resource
    )


def _warn_grpc_missing(what: str, endpoint: str) -> None:
    warn_once(
        f"grpc-fallback:{what}",
        "The OTLP protocol is grpc but the gRPC exporter is not installed: sending %s over "
        "OTLP/HTTP to %s instead. For gRPC: pip install 'otel-feedback[grpc]'",
        what,
        endpoint,
    )


_FACTORIES: dict[str, Callable[[Resource], FeedbackExporter]] = {
    "otlp": _otlp_feedback_exporter,
    "console": lambda _resource: ConsoleFeedbackExporter(),
    "jsonl": lambda _resource: JsonlFeedbackExporter(env.jsonl_path()),
    "phoenix": lambda _resource: PhoenixFeedbackExporter(),
    "langsmith": lambda _resource: LangSmithFeedbackExporter(),
    "mlflow": lambda _resource: MLflowFeedbackExporter(),
    "langfuse": lambda _resource: LangfuseFeedbackExporter(),
}


def _provider_from_environment() -> TracerProvider:
    provider = TracerProvider(resource=Resource.create())
    span_exporter = _span_exporter_from_environment()
    if span_exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return provider


def _span_exporter_from_environment() -> SpanExporter | None:
    name = env.traces_exporter_name()
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if env.otlp_traces_protocol() == env.PROTOCOL_GRPC:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            endpoint = env.http_endpoint_beside_grpc(env.otlp_traces_grpc_endpoint(), "/v1/traces")
            _warn_grpc_missing("spans", endpoint)
            return _http_span_exporter(endpoint)
        return GrpcSpanExporter()
    return _http_span_exporter()


def _http_span_exporter(endpoint: str | None = None) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=endpoint)
