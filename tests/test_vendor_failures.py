"""Each vendor exporter maps its endpoint's answers onto the engine's result contract.

Down, slow, busy or failing -> RETRY; a record the store cannot place yet (404) -> that record
retried; a bad record (400) -> that record refused with the server's reason; refused
credentials (401) -> the whole batch refused with a reason that names the variables.
Loopback stand-ins on 127.0.0.1; the real MLflow server is exercised in test_mlflow.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    LangfuseFeedbackExporter,
    LangSmithFeedbackExporter,
    MLflowFeedbackExporter,
    record_feedback,
)
from otel_feedback._export.base import PartialFeedbackExport, RetryLater
from tests.conftest import make_pipeline
from tests.vendor_standin import Seen, StandIn, closed_url


@dataclass(frozen=True)
class Vendor:
    name: str
    make: Callable[[str, float], FeedbackExporter]
    record_id: Callable[[Seen], str]
    credentials: tuple[str, ...]


VENDORS = [
    Vendor(
        "langsmith",
        lambda url, timeout: LangSmithFeedbackExporter(
            endpoint=url, api_key="k", project_id=uuid.UUID(int=1), timeout=timeout
        ),
        lambda seen: str(seen.body["id"]),
        ("LANGSMITH_API_KEY",),
    ),
    Vendor(
        "mlflow",
        lambda url, timeout: MLflowFeedbackExporter(tracking_uri=url, timeout=timeout),
        lambda seen: str(seen.body["assessment"]["metadata"]["feedback_id"]),
        ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"),
    ),
    Vendor(
        "langfuse",
        lambda url, timeout: LangfuseFeedbackExporter(
            base_url=url, public_key="pk", secret_key="sk", timeout=timeout
        ),
        lambda seen: str(seen.body["id"]),
        ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"),
    ),
]


@pytest.fixture(params=VENDORS, ids=[v.name for v in VENDORS])
def vendor(request: pytest.FixtureRequest) -> Vendor:
    chosen: Vendor = request.param
    return chosen


@pytest.fixture
def batch() -> list[Feedback]:
    pipeline = make_pipeline()
    with pipeline.tracer.start_as_current_span("answer"):
        for key in ("first", "second", "third"):
            record_feedback(key, score=1, comment=f"on {key}")
    pipeline.flush()
    found = list(pipeline.feedback.get_finished_feedback())
    pipeline.provider.shutdown()
    return found


@pytest.fixture
def server() -> Iterator[StandIn]:
    started = StandIn()
    yield started
    started.close()


def answering(status_of: Callable[[str], int], vendor: Vendor) -> Callable[[Seen], Any]:
    def answer(seen: Seen) -> tuple[int, Any]:
        if seen.method != "POST":
            return 404, {"message": "not found"}
        status = status_of(vendor.record_id(seen))
        return status, {"message": f"scripted {status}"} if status >= 300 else {"id": "ok"}

    return answer


def test_all_taken_is_success(vendor: Vendor, server: StandIn, batch: list[Feedback]) -> None:
    assert vendor.make(server.url, 5).export(batch) is FeedbackExportResult.SUCCESS
    assert len([s for s in server.seen if s.method == "POST"]) == 3


def test_an_endpoint_that_is_down_means_retry(vendor: Vendor, batch: list[Feedback]) -> None:
    assert vendor.make(closed_url(), 5).export(batch) is FeedbackExportResult.RETRY


def test_an_endpoint_that_does_not_answer_in_time_means_retry(
    vendor: Vendor, server: StandIn, batch: list[Feedback]
) -> None:
    release = threading.Event()

    def stall(_seen: Seen) -> tuple[int, Any]:
        release.wait(10)  # on the server's thread: longer than the exporter waits
        return 200, {}

    server.answer = stall
    try:
        assert vendor.make(server.url, 0.3).export(batch) is FeedbackExportResult.RETRY
        assert len(server.seen) == 1  # the rest of the batch did not wait out its own timeout
    finally:
        release.set()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_busy_or_failing_means_retry_and_the_rest_waits(
    vendor: Vendor, server: StandIn, batch: list[Feedback], status: int
) -> None:
    server.answer = answering(lambda _id: status, vendor)
    assert vendor.make(server.url, 5).export(batch) is FeedbackExportResult.RETRY
    assert len([s for s in server.seen if s.method == "POST"]) == 1


def test_busy_mid_batch_hands_back_the_rest_with_the_wait_asked_for(
    vendor: Vendor, server: StandIn, batch: list[Feedback]
) -> None:
    taken: list[str] = []

    def answer(seen: Seen) -> tuple[int, Any, dict[str, str]]:
        if seen.method != "POST":
            return 404, {"message": "not found"}, {}
        if not taken:
            taken.append(vendor.record_id(seen))
            return 200, {"id": "ok"}, {}
        return 429, {"message": "slow down"}, {"Retry-After": "7"}

    server.answer = answer
    result = vendor.make(server.url, 5).export(batch)
    assert result == PartialFeedbackExport(retry=batch[1:], refused=[], retry_after_s=7.0)
    assert len([s for s in server.seen if s.method == "POST"]) == 2


@pytest.mark.parametrize("mode", ["429", "503"])
def test_busy_at_once_says_when_to_come_back(
    vendor: Vendor, server: StandIn, batch: list[Feedback], mode: str
) -> None:
    status = int(mode)
    server.answer = lambda _seen: (status, {"message": "busy"}, {"Retry-After": "30"})
    assert vendor.make(server.url, 5).export(batch) == RetryLater(after_s=30.0)


def test_a_bad_record_is_refused_with_the_servers_reason(
    vendor: Vendor, server: StandIn, batch: list[Feedback]
) -> None:
    bad = batch[1]
    server.answer = answering(lambda rid: 400 if rid == str(bad.id) else 200, vendor)
    result = vendor.make(server.url, 5).export(batch)
    assert isinstance(result, PartialFeedbackExport)
    assert list(result.retry) == []
    ((refused, reason),) = result.refused
    assert refused is bad
    assert "HTTP 400" in reason
    assert "scripted 400" in reason
    assert len([s for s in server.seen if s.method == "POST"]) == 3  # the others went on


def test_refused_credentials_refuse_the_batch_with_a_clear_reason(
    vendor: Vendor, server: StandIn, batch: list[Feedback]
) -> None:
    server.answer = answering(lambda _id: 401, vendor)
    result = vendor.make(server.url, 5).export(batch)
    assert isinstance(result, PartialFeedbackExport)
    assert [record for record, _ in result.refused] == batch
    reason = result.refused[0][1]
    assert "refused the credentials (HTTP 401)" in reason
    for variable in vendor.credentials:
        assert variable in reason
    assert len(server.seen) == 1  # no use sending the rest with the same credentials


def test_a_record_whose_trace_is_not_there_yet_is_retried(
    vendor: Vendor, server: StandIn, batch: list[Feedback]
) -> None:
    late = batch[0]
    server.answer = answering(lambda rid: 404 if rid == str(late.id) else 200, vendor)
    result = vendor.make(server.url, 5).export(batch)
    assert result == PartialFeedbackExport(retry=[late], refused=[])
    server.answer = answering(lambda _id: 404, vendor)
    # The endpoint answered: it is up, these are not ready (not "the endpoint is down").
    assert vendor.make(server.url, 5).export(batch) == PartialFeedbackExport(
        retry=batch, refused=[]
    )


def test_a_non_positive_timeout_is_refused(vendor: Vendor) -> None:
    with pytest.raises(ValueError, match="timeout: must be positive"):
        vendor.make("http://127.0.0.1:1", 0)


def test_a_url_that_is_not_http_names_its_setting(vendor: Vendor) -> None:
    with pytest.raises(ValueError, match=r"must be an http:// or https:// URL, got 'databricks'"):
        vendor.make("databricks", 5)


def test_a_record_that_names_no_trace_is_refused_unsent(vendor: Vendor, server: StandIn) -> None:
    orphan = Feedback.model_validate(
        {"id": uuid.uuid4(), "created_at": "2026-01-01T00:00:00Z", "key": "k", "score": 1}
        | {"modified_at": "2026-01-01T00:00:00Z"}
    )
    result = vendor.make(server.url, 5).export([orphan])
    assert isinstance(result, PartialFeedbackExport)
    ((refused, reason),) = result.refused
    assert refused is orphan
    assert "trace" in reason
    assert [s for s in server.seen if s.method == "POST"] == []
