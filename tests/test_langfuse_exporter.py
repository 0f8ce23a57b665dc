"""LangfuseFeedbackExporter against a loopback stand-in for Langfuse's public API.

No Langfuse server can run here. Every body the exporter posts is read with the ``langfuse``
package's own wire conversion and validated by its ``CreateScoreRequest`` model, with no
field left over that the model does not know. The environment Langfuse gives a trace sent
over OTLP (the resource's ``deployment.environment.name``, else ``deployment.environment``)
is taken as the design notes record it from Langfuse's ingestion code, not from a server.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    FeedbackExportResult,
    FeedbackSpanProcessor,
    LangfuseFeedbackExporter,
    record_feedback,
)
from otel_feedback._export.base import PartialFeedbackExport
from otel_feedback._export.langfuse import NO_VALUE
from otel_feedback._model import Feedback
from tests.conftest import _reset_global_tracer_provider, make_pipeline
from tests.vendor_standin import Seen, StandIn

# The langfuse package is the format oracle; its OpenTelemetry pins are newer than this
# package's floors, so the run against the lowest versions goes without it.
langfuse_api = pytest.importorskip("langfuse.api")
serialization = pytest.importorskip("langfuse.api.core.serialization")
CreateScoreRequest = langfuse_api.CreateScoreRequest
convert_and_respect_annotation_metadata = serialization.convert_and_respect_annotation_metadata

PUBLIC, SECRET = "pk-lf-public", "sk-lf-secret-for-tests"


def validate(seen: Seen) -> None:
    expected = base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
    assert seen.headers.get("authorization") == f"Basic {expected}"
    assert (seen.method, seen.path) == ("POST", "/api/public/scores")
    read = convert_and_respect_annotation_metadata(
        object_=seen.body, annotation=CreateScoreRequest, direction="read"
    )
    score = CreateScoreRequest.model_validate(read)
    assert not score.model_extra, f"fields Langfuse's CreateScoreRequest lacks: {score.model_extra}"
    assert score.environment == seen.body.get("environment")


@pytest.fixture
def langfuse() -> Iterator[StandIn]:
    server = StandIn(answer=lambda seen: (200, {"id": seen.body["id"]}), validate=validate)
    yield server
    server.close()
    assert not server.invalid, server.invalid


def exporter_for(server: StandIn) -> LangfuseFeedbackExporter:
    return LangfuseFeedbackExporter(base_url=server.url, public_key=PUBLIC, secret_key=SECRET)


def test_each_record_becomes_a_score_on_its_trace_and_observation(langfuse: StandIn) -> None:
    pipeline = make_pipeline()
    processor = FeedbackSpanProcessor(exporter_for(langfuse))
    pipeline.provider.add_span_processor(processor)
    with pipeline.tracer.start_as_current_span("answer") as answer:
        with pipeline.tracer.start_as_current_span("retrieve") as retrieve:
            record_feedback("retrieval_hit", score=True)
        record_feedback(
            "correctness",
            score=0.75,
            comment="cites the policy",
            feedback_source_type="model",
            extra={"judge": "j-1"},
        )
        record_feedback("user_rating", value="thumbs_up", feedback_source_type="app")
        record_feedback("votes", score=3, value="three", correction="four")
    record_feedback("trace_quality", score=1, trace_id=answer.get_span_context().trace_id)
    assert processor.force_flush(10_000)
    pipeline.flush()
    records = {r.key: r for r in pipeline.feedback.get_finished_feedback()}
    pipeline.provider.shutdown()

    scores = {body["name"]: body for body in langfuse.posted("/api/public/scores")}
    assert set(scores) == set(records)
    trace_hex = f"{answer.get_span_context().trace_id:032x}"
    for name, score in scores.items():
        assert score["id"] == str(records[name].id)  # Langfuse upserts on it
        assert score["traceId"] == trace_hex
    assert scores["retrieval_hit"]["observationId"] == f"{retrieve.get_span_context().span_id:016x}"
    assert scores["correctness"]["observationId"] == f"{answer.get_span_context().span_id:016x}"
    assert "observationId" not in scores["trace_quality"]
    assert (scores["retrieval_hit"]["value"], scores["retrieval_hit"]["dataType"]) == (
        1.0,
        "BOOLEAN",
    )
    assert (scores["correctness"]["value"], scores["correctness"]["dataType"]) == (
        0.75,
        "NUMERIC",
    )
    assert scores["correctness"]["comment"] == "cites the policy"
    assert scores["correctness"]["metadata"]["extra"] == {"judge": "j-1"}
    assert scores["correctness"]["metadata"]["feedback_source"]["type"] == "model"
    assert (scores["user_rating"]["value"], scores["user_rating"]["dataType"]) == (
        "thumbs_up",
        "CATEGORICAL",
    )
    assert "value" not in scores["user_rating"]["metadata"]  # it is the score's value
    # A score and a label: the score is the value, the label and correction stay in metadata.
    assert (scores["votes"]["value"], scores["votes"]["dataType"]) == (3.0, "NUMERIC")
    assert scores["votes"]["metadata"]["value"] == "three"
    assert scores["votes"]["metadata"]["correction"] == "four"
    assert scores["votes"]["timestamp"].endswith("Z")


def test_a_record_with_no_value_langfuse_takes_is_refused_with_the_reason(
    langfuse: StandIn,
) -> None:
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("answer"):
        record_feedback("note_only", comment="just words")
        record_feedback("structured", value={"a": 1})
        record_feedback("fine", score=1)
    pipeline.flush()
    batch = pipeline.feedback.get_finished_feedback()
    pipeline.provider.shutdown()

    result = exporter_for(langfuse).export(batch)

    assert isinstance(result, PartialFeedbackExport)
    assert list(result.retry) == []
    assert sorted((r.key, reason) for r, reason in result.refused) == [
        ("note_only", NO_VALUE),
        ("structured", NO_VALUE),
    ]
    assert [b["name"] for b in langfuse.posted("/api/public/scores")] == ["fine"]


def test_the_secret_key_is_never_shown(langfuse: StandIn) -> None:
    assert SECRET not in repr(exporter_for(langfuse))


def test_missing_keys_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match="LANGFUSE_PUBLIC_KEY"):
        LangfuseFeedbackExporter()
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    with pytest.raises(ValueError, match="LANGFUSE_SECRET_KEY"):
        LangfuseFeedbackExporter()


@pytest.mark.parametrize("variable", ["LANGFUSE_BASE_URL", "LANGFUSE_HOST"])
def test_the_environment_configures_it(
    langfuse: StandIn, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("LANGFUSE_BASE_URL", raising=False)
    monkeypatch.delenv("LANGFUSE_HOST", raising=False)
    monkeypatch.setenv(variable, langfuse.url)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("answer"):
        record_feedback("k", score=1)
    pipeline.flush()
    batch = pipeline.feedback.get_finished_feedback()
    pipeline.provider.shutdown()
    assert LangfuseFeedbackExporter().export(batch) is FeedbackExportResult.SUCCESS
    assert len(langfuse.posted("/api/public/scores")) == 1


def test_the_newer_base_url_wins_over_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_BASE_URL", "http://base.example")
    monkeypatch.setenv("LANGFUSE_HOST", "http://host.example")
    exporter = LangfuseFeedbackExporter(public_key=PUBLIC, secret_key=SECRET)
    assert "http://base.example" in repr(exporter)


def one_record() -> list[Feedback]:
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("answer"):
        record_feedback("k", score=1)
    pipeline.flush()
    batch = list(pipeline.feedback.get_finished_feedback())
    pipeline.provider.shutdown()
    return batch


def environments_sent(server: StandIn) -> list[str | None]:
    return [body.get("environment") for body in server.posted("/api/public/scores")]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"deployment.environment.name": "staging"}, "staging"),
        ({"deployment.environment": "prod-eu"}, "prod-eu"),  # the older attribute
        ({"deployment.environment.name": "staging", "deployment.environment": "x"}, "staging"),
        ({"service.name": "bot"}, None),  # Langfuse's default, as for the trace
    ],
)
def test_each_score_lands_in_its_traces_environment(
    langfuse: StandIn, attributes: dict[str, str], expected: str | None
) -> None:
    exporter = LangfuseFeedbackExporter(
        base_url=langfuse.url,
        public_key=PUBLIC,
        secret_key=SECRET,
        resource=Resource.create(attributes),
    )
    assert exporter.export(one_record()) is FeedbackExportResult.SUCCESS
    assert environments_sent(langfuse) == [expected]


def test_the_environment_comes_from_the_global_providers_resource(langfuse: StandIn) -> None:
    exporter = exporter_for(langfuse)  # made before the provider is set: read at export
    _reset_global_tracer_provider()
    trace.set_tracer_provider(
        TracerProvider(resource=Resource.create({"deployment.environment.name": "canary"}))
    )
    try:
        assert exporter.export(one_record()) is FeedbackExportResult.SUCCESS
    finally:
        _reset_global_tracer_provider()
    assert environments_sent(langfuse) == ["canary"]


def test_without_a_provider_the_environment_variables_say_it(
    langfuse: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=dev")
    _reset_global_tracer_provider()
    exporter = exporter_for(langfuse)
    assert exporter.export(one_record()) is FeedbackExportResult.SUCCESS
    assert environments_sent(langfuse) == ["dev"]


def test_a_given_environment_wins_and_is_checked(langfuse: StandIn) -> None:
    exporter = LangfuseFeedbackExporter(
        base_url=langfuse.url,
        public_key=PUBLIC,
        secret_key=SECRET,
        environment="eval",
        resource=Resource.create({"deployment.environment.name": "staging"}),
    )
    assert exporter.export(one_record()) is FeedbackExportResult.SUCCESS
    assert environments_sent(langfuse) == ["eval"]
    for bad in ("Production", "langfuse-x", "", "a" * 41, "has space"):
        with pytest.raises(ValueError, match=r"^environment: "):
            LangfuseFeedbackExporter(public_key=PUBLIC, secret_key=SECRET, environment=bad)
