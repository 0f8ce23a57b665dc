"""JSON over HTTP for the exporters of vendor stores, and how one record's answer is read.

Each vendor exporter sends its records one request at a time through a keep-alive session
and says, per answer, what became of the record: delivered, to be sent again, or refused.
:func:`deliver_each` turns those verdicts into the engine's result contract. A transient
failure (no answer, 408, 429, 5xx) ends the round: the rest of the batch is sent again later
rather than each record waiting out its own timeout against an endpoint that is down.
"""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from otel_feedback._export.base import (
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
)
from otel_feedback._log import logger
from otel_feedback._model import Feedback

__all__ = ["JsonHttp", "PerRecordExporter", "Reply", "Verdict", "deliver_each", "refusal"]

_REASON_CHARS = 300


@dataclass(frozen=True)
class Reply:
    """One HTTP answer; ``status`` 0 when none came (refused, unreachable, timed out)."""

    status: int
    text: str = ""

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        """Worth sending again later: no answer, 408, 429 or a server error."""
        return self.status in (0, 408, 429) or self.status >= 500

    @property
    def unauthorized(self) -> bool:
        """The credentials were refused (401 or 403)."""
        return self.status in (401, 403)

    def json(self) -> Any:
        """The body read as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def message(self) -> str:
        """The server's own words, short: its JSON error message when it gave one."""
        data = self.json()
        if isinstance(data, dict):
            for name in ("message", "detail", "error"):
                said = data.get(name)
                if isinstance(said, str):
                    return said[:_REASON_CHARS]
        return self.text[:_REASON_CHARS]


class JsonHttp:
    """A keep-alive session to one base URL; every request waits at most ``timeout`` seconds.

    ``setting`` names where the URL came from, for the error a URL that is not HTTP raises.
    The headers (credentials among them) are never logged nor shown in a repr.
    """

    def __init__(
        self,
        base_url: str,
        *,
        vendor: str,
        headers: Mapping[str, str],
        timeout: float,
        basic_auth: tuple[str, str] | None = None,
        setting: str = "base_url",
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout: must be positive, got {timeout!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{setting}: must be an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._vendor = vendor
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers.update(headers)
        self._session.headers["Content-Type"] = "application/json"
        self._session.auth = basic_auth

    def __repr__(self) -> str:
        return f"JsonHttp({self.base_url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request; a failure to get an answer is a ``Reply`` with status 0."""
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                data=None if body is None else json.dumps(body),
                params=params,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            # The exception's text names the URL, never the headers.
            logger.debug("%s at %s did not answer: %s", self._vendor, self.base_url, error)
            return Reply(0, f"no answer from {self.base_url} ({type(error).__name__})")
        return Reply(response.status_code, response.text)

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()


class Verdict(enum.Enum):
    """What one answer means for the record it was about."""

    DELIVERED = "delivered"
    RETRY = "retry"
    """Send this record again later (e.g. its trace is not in the store yet)."""
    RETRY_REST = "retry the rest"
    """The endpoint is down, slow or busy: this record and all after it wait."""
    REFUSED = "refused"
    REFUSED_REST = "refused the rest"
    """Refused for a reason that holds for every record (bad credentials)."""


Step = tuple[Verdict, str]
"""A verdict and, for a refusal, its reason."""


def refusal(vendor: str, reply: Reply, *, credentials: str) -> Step:
    """The verdict for an answer that is neither success nor worth a retry."""
    if reply.unauthorized:
        return (
            Verdict.REFUSED_REST,
            f"{vendor} refused the credentials (HTTP {reply.status}); check {credentials}",
        )
    return Verdict.REFUSED, f"{vendor} refused it (HTTP {reply.status}: {reply.message()})"


def deliver_each(batch: Sequence[Feedback], send: Callable[[Feedback], Step]) -> ExportOutcome:
    """Send the records one by one with ``send``; gather the verdicts into one outcome."""
    retry: list[Feedback] = []
    refused: list[tuple[Feedback, str]] = []
    for index, record in enumerate(batch):
        verdict, reason = send(record)
        if verdict is Verdict.RETRY:
            retry.append(record)
        elif verdict is Verdict.RETRY_REST:
            if index == 0:
                return FeedbackExportResult.RETRY  # the endpoint is unavailable
            retry.extend(batch[index:])
            break
        elif verdict is Verdict.REFUSED:
            refused.append((record, reason))
        elif verdict is Verdict.REFUSED_REST:
            refused.extend((rest, reason) for rest in batch[index:])
            break
    if not retry and not refused:
        return FeedbackExportResult.SUCCESS
    # The endpoint answered: what waits is not ready yet (its trace is not ingested).
    return PartialFeedbackExport(retry=retry, refused=refused)


class PerRecordExporter(FeedbackExporter):
    """An exporter of a vendor store that sends one request per record through ``_http``."""

    _http: JsonHttp

    def export(self, batch: Sequence[Feedback]) -> ExportOutcome:
        """Send each record; see the class for the outcomes."""
        return deliver_each(batch, self._send)

    def shutdown(self) -> None:
        """Close the connections."""
        self._http.close()

    @abc.abstractmethod
    def _send(self, record: Feedback) -> Step:
        """Send one record; say what became of it."""
