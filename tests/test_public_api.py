from __future__ import annotations

import inspect

import otel_feedback

PUBLIC = [
    "ConsoleFeedbackExporter",
    "EvaluationStats",
    "Feedback",
    "FeedbackCategory",
    "FeedbackConfig",
    "FeedbackExportResult",
    "FeedbackExportStats",
    "FeedbackExporter",
    "FeedbackInstrumentor",
    "FeedbackSource",
    "FeedbackSpanProcessor",
    "FeedbackTokenError",
    "InMemoryFeedbackExporter",
    "InvalidFeedbackError",
    "JsonlFeedbackExporter",
    "JudgedRun",
    "LangSmithFeedbackExporter",
    "LangfuseFeedbackExporter",
    "MLflowFeedbackExporter",
    "OTLPFeedbackExporter",
    "OnlineEvaluationProcessor",
    "PartialFeedbackExport",
    "PhoenixFeedbackExporter",
    "RecordedFeedback",
    "RetryLater",
    "RunHandle",
    "__version__",
    "configure",
    "create_feedback_token",
    "current_run",
    "record_feedback",
    "record_feedback_from_token",
]


def test_the_public_names_are_pinned_and_sorted() -> None:
    assert otel_feedback.__all__ == PUBLIC
    assert sorted(otel_feedback.__all__) == otel_feedback.__all__


def test_every_public_name_is_documented() -> None:
    for name in PUBLIC:
        obj = getattr(otel_feedback, name)
        if name != "__version__":
            assert inspect.getdoc(obj), name


def test_options_are_keyword_only() -> None:
    parameters = inspect.signature(otel_feedback.record_feedback).parameters
    positional = [p.name for p in parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == ["key"]
    processor = inspect.signature(otel_feedback.FeedbackSpanProcessor).parameters
    assert [p.name for p in processor.values() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["exporter"]
    evaluation = inspect.signature(otel_feedback.OnlineEvaluationProcessor).parameters
    assert [p.name for p in evaluation.values() if p.kind is p.POSITIONAL_OR_KEYWORD] == [
        "evaluators"
    ]


def test_the_signature_follows_langsmith_create_feedback() -> None:
    from langsmith import Client

    ours = set(inspect.signature(otel_feedback.record_feedback).parameters)
    theirs = set(inspect.signature(Client.create_feedback).parameters)
    # Transport and addressing options of the REST client have no meaning here: the span
    # is the address and OTLP is the transport. Ours adds other ways to name the run.
    not_ours = {
        "self",
        "project_id",
        "stop_after_attempt",
        "kwargs",
        "address",
        "extend_trace_retention",
    }
    assert theirs - not_ours <= ours
    assert ours - theirs == {"user_id", "span", "traceparent"}
