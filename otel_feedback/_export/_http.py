"""HTTP for the exporters: one client, one rule for what is transient, one bounded reader.

Each vendor exporter sends its records one request at a time through a keep-alive session
and says, per answer, what became of the record: delivered, to be sent again, or refused.
:func:`deliver_each` turns those verdicts into the engine's result contract. A transient
failure (no answer, 408, 429, 5xx, or an answer cut off mid-body) ends the round: the rest
of the batch is sent again later rather than each record waiting out its own timeout against
an endpoint that is down. A ``Retry-After`` the endpoint sends travels with the outcome, so
the engine waits as long as it was asked to.

No body is read whole: an error body is read up to :data:`ERROR_BODY_LIMIT` (enough for the
server's message) and the connection is closed rather than drained, so a misbehaving
endpoint cannot make the application hold hundreds of MiB. The OTLP exporter reads the SDK
exporter's answers through :func:`read_body` and :func:`retry_after_of` too.
"""

from __future__ import annotations

import abc
import enum
import http.client
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final, NamedTuple

import requests
import urllib3.exceptions

from otel_feedback._export.base import (
    BatchRefusedError,
    ExportOutcome,
    FeedbackExporter,
    FeedbackExportResult,
    PartialFeedbackExport,
    RetryLater,
)
from otel_feedback._log import logger
from otel_feedback._model import Feedback

__all__ = [
    "ANSWER_BODY_LIMIT",
    "CUT_OFF",
    "DELIVERED",
    "ERROR_BODY_LIMIT",
    "BatchRefusedError",
    "JsonHttp",
    "PerRecordExporter",
    "Reply",
    "Step",
    "Verdict",
    "deliver_each",
    "read_body",
    "refusal",
    "retry_after_of",
    "transient_status",
    "unavailable",
]

ERROR_BODY_LIMIT: Final = 64 * 1024
"""Bytes read of an error answer's body: the server's message is in its first lines."""
ANSWER_BODY_LIMIT: Final = 1024 * 1024
"""Bytes read of a successful answer's body (a project lookup's JSON is far smaller)."""
_CHUNK: Final = 16 * 1024
_REASON_CHARS = 300

CUT_OFF: Final[tuple[type[BaseException], ...]] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)
"""What reading an answer's body raises when the answer is cut off or malformed (an
incomplete chunk, a reset mid-body, a body that does not decode, a read timeout)."""


def transient_status(status: int) -> bool:
    """Worth sending again later: 408, 429 or a server error (the one rule for all)."""
    return status in (408, 429) or status >= 500


def retry_after_of(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date).

    ``None`` when absent or unparseable (the engine's own backoff applies then); a date in
    the past is 0.

    Example::

        retry_after_of("30")                             # 30.0
        retry_after_of("Wed, 21 Oct 2026 07:28:00 GMT")  # seconds until then
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": RFC 9110 dates are in GMT all the same
        moment = moment.replace(tzinfo=timezone.utc)
    return max(moment.timestamp() - (time.time() if now is None else now), 0.0)


def read_body(response: requests.Response, limit: int, *, deadline: float | None = None) -> bytes:
    """At most ``limit`` bytes of a streamed answer's body; the response is closed after.

    A body longer than ``limit`` is not drained: the connection is closed instead, which
    stops the server sending. ``deadline`` (``time.monotonic()``) bounds the whole read,
    since a streamed read's timeout applies to each chunk only.

    Raises:
        One of :data:`CUT_OFF`: the answer was cut off, malformed, or too slow.
    """
    taken = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=_CHUNK):
            taken += chunk
            if len(taken) > limit:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise requests.Timeout("the answer's body did not arrive in time")
    finally:
        response.close()
    return bytes(taken[:limit])


@dataclass(frozen=True)
class Reply:
    """One HTTP answer.

    ``status`` is 0 when no whole answer came: refused, unreachable, timed out, or cut off
    mid-body.
    """

    status: int
    text: str = ""
    retry_after_s: float | None = None
    """The answer's ``Retry-After`` in seconds, when it sent a readable one."""

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        """Worth sending again later: no whole answer, 408, 429 or a server error."""
        return self.status == 0 or transient_status(self.status)

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
        return " ".join(self.text.split())[:_REASON_CHARS] or "no detail"


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
        """Send one request; no whole answer is a ``Reply`` with status 0."""
        deadline = time.monotonic() + self._timeout
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                data=None if body is None else json.dumps(body),
                params=params,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,  # the body is read up to a bound, below
            )
        except requests.RequestException as error:
            # The exception's text names the URL, never the headers.
            logger.debug("%s at %s did not answer: %s", self._vendor, self.base_url, error)
            return Reply(0, f"no answer from {self.base_url} ({type(error).__name__})")
        status = response.status_code
        after = retry_after_of(response.headers.get("Retry-After"))
        limit = ANSWER_BODY_LIMIT if 200 <= status < 300 else ERROR_BODY_LIMIT
        try:
            data = read_body(response, limit, deadline=deadline)
        except CUT_OFF as error:
            # Whatever the status said, an answer that did not arrive whole is no verdict.
            logger.debug("%s's answer (HTTP %s) was cut off: %r", self._vendor, status, error)
            return Reply(0, f"HTTP {status} cut off mid-body ({type(error).__name__})", after)
        return Reply(status, data.decode("utf-8", "replace"), after)

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


class Step(NamedTuple):
    """A verdict; for a refusal its reason; for a retry the wait the endpoint asked for."""

    verdict: Verdict
    reason: str = ""
    retry_after_s: float | None = None


DELIVERED: Final = Step(Verdict.DELIVERED)


def unavailable(reply: Reply) -> Step:
    """The step for a transient answer: this record and the rest wait, as long as asked."""
    return Step(Verdict.RETRY_REST, retry_after_s=reply.retry_after_s)


def refusal(vendor: str, reply: Reply, *, credentials: str) -> Step:
    """The verdict for an answer that is neither success nor worth a retry."""
    if reply.unauthorized:
        return Step(
            Verdict.REFUSED_REST,
            f"{vendor} refused the credentials (HTTP {reply.status}); check {credentials}",
        )
    return Step(Verdict.REFUSED, f"{vendor} refused it (HTTP {reply.status}: {reply.message()})")


def deliver_each(batch: Sequence[Feedback], send: Callable[[Feedback], Step]) -> ExportOutcome:
    """Send the records one by one with ``send``; gather the verdicts into one outcome.

    The first record meeting an unavailable endpoint makes the whole batch ``RETRY``, or
    :class:`RetryLater` when the endpoint said when to come back.
    """
    retry: list[Feedback] = []
    refused: list[tuple[Feedback, str]] = []
    after: float | None = None
    for index, record in enumerate(batch):
        step = send(record)
        if step.retry_after_s is not None:
            after = max(after or 0.0, step.retry_after_s)
        if step.verdict is Verdict.RETRY:
            retry.append(record)
        elif step.verdict is Verdict.RETRY_REST:
            if index == 0:  # the endpoint is unavailable
                return FeedbackExportResult.RETRY if after is None else RetryLater(after_s=after)
            retry.extend(batch[index:])
            break
        elif step.verdict is Verdict.REFUSED:
            refused.append((record, step.reason))
        elif step.verdict is Verdict.REFUSED_REST:
            refused.extend((rest, step.reason) for rest in batch[index:])
            break
    if not retry and not refused:
        return FeedbackExportResult.SUCCESS
    return PartialFeedbackExport(
        retry=retry, refused=refused, retry_after_s=after if retry else None
    )


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
