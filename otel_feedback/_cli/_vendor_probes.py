"""Probes of the vendors' REST APIs, each as its exporter uses it: key, endpoint, and a read.

Each probe first checks that the credentials the exporter needs are set, then sends the
request the exporter itself sends first (LangSmith's project lookup), or an authenticated
read of the same API (MLflow's experiments, Langfuse's project), so that an endpoint that
is down, is not that vendor, or refuses the key shows before feedback is lost.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Final

from otel_feedback import _environment as env
from otel_feedback._cli._probes import Answer, Finding, http_request

__all__ = ["probe_langfuse", "probe_langsmith", "probe_mlflow"]


def _not_http(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https")


def _answered(vendor: str, base: str, answer: Answer, where: str) -> Finding | None:
    """The finding for an answer that is no answer at all, or not from ``vendor``'s API."""
    if answer.status is None:
        what = answer.error or f"speaks {answer.wrong_protocol}"
        return Finding(False, f"{vendor} at {base} is unreachable: {what}", _REACH[vendor])
    if answer.status in (401, 403):
        return Finding(
            False,
            f"{vendor} at {base} refused the credentials (HTTP {answer.status})",
            _KEYS[vendor],
        )
    if not 200 <= answer.status < 300:
        return Finding(
            False,
            f"{base} answers HTTP {answer.status} on {where}: not {vendor}'s API",
            _REACH[vendor],
        )
    return None


_REACH: Final = {
    "LangSmith": f"check {env.LANGSMITH_ENDPOINT} (the API URL, e.g. "
    "https://api.smith.langchain.com)",
    "MLflow": f"start the tracking server, or set {env.MLFLOW_TRACKING_URI} to its URL",
    "Langfuse": f"check {env.LANGFUSE_BASE_URL} (or {env.LANGFUSE_HOST}), e.g. "
    "https://cloud.langfuse.com",
}
_KEYS: Final = {
    "LangSmith": f"set {env.LANGSMITH_API_KEY} to an API key of this LangSmith",
    "MLflow": f"set {env.MLFLOW_TRACKING_TOKEN}, or {env.MLFLOW_TRACKING_USERNAME} and "
    f"{env.MLFLOW_TRACKING_PASSWORD}, to credentials of this server",
    "Langfuse": f"set {env.LANGFUSE_PUBLIC_KEY} and {env.LANGFUSE_SECRET_KEY} to the keys "
    "of a project of this Langfuse",
}


def probe_langsmith(timeout: float) -> Finding:
    """The ``langsmith`` exporter: its key, and its first request (the project's id)."""
    base, key, project = env.langsmith_endpoint(), env.langsmith_api_key(), env.langsmith_project()
    if not key:
        return Finding(
            False, f"langsmith: {env.LANGSMITH_API_KEY} is unset: no feedback can be sent",
            _KEYS["LangSmith"],
        )  # fmt: skip
    if _not_http(base):
        return Finding(False, f"{env.LANGSMITH_ENDPOINT}={base} is not an HTTP URL")
    query = urllib.parse.urlencode({"name": project, "limit": "1"})
    answer = http_request(f"{base}/sessions?{query}", {"x-api-key": key}, timeout, method="GET")
    found = _answered("LangSmith", base, answer, "/sessions")
    if found is not None:
        return found
    try:
        projects = json.loads(answer.body)
    except ValueError:
        projects = None
    if not isinstance(projects, list):
        return Finding(
            False, f"{base} answers /sessions with no list of projects: not LangSmith's API",
            _REACH["LangSmith"],
        )  # fmt: skip
    if not projects:
        return Finding(
            False,
            f"LangSmith at {base} has no project {project!r} ({env.LANGSMITH_PROJECT}): "
            "feedback waits for it, and is lost if no trace creates it in time",
            f"send a trace to the project first, or set {env.LANGSMITH_PROJECT} to one that exists",
        )
    return Finding(
        True, f"LangSmith at {base} took the API key; project {project!r} exists (HTTP 200)"
    )


def probe_mlflow(timeout: float) -> Finding:
    """The ``mlflow`` exporter: an HTTP tracking server that takes its credentials."""
    base = env.mlflow_tracking_uri()
    if _not_http(base):
        return Finding(
            False,
            f"{env.MLFLOW_TRACKING_URI}={base} is not an HTTP tracking server: the mlflow "
            "exporter sends to a server only",
            "start `mlflow server` and set MLFLOW_TRACKING_URI to its http:// URL",
        )
    token, basic = env.mlflow_credentials()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = http_request(
        f"{base}/api/2.0/mlflow/experiments/search?max_results=1",
        headers,
        timeout,
        method="GET",
        basic_auth=None if token else basic,
    )
    found = _answered("MLflow", base, answer, "/api/2.0/mlflow/experiments/search")
    if found is not None:
        return found
    return Finding(True, f"MLflow at {base} answers its REST API (HTTP {answer.status})")


def probe_langfuse(timeout: float) -> Finding:
    """The ``langfuse`` exporter: both keys, and a read of the project they belong to."""
    base = env.langfuse_base_url()
    public, secret = env.langfuse_keys()
    if not public or not secret:
        missing = [
            name
            for name, value in (
                (env.LANGFUSE_PUBLIC_KEY, public),
                (env.LANGFUSE_SECRET_KEY, secret),
            )
            if not value
        ]
        return Finding(
            False,
            f"langfuse: {' and '.join(missing)} unset: no feedback can be sent",
            _KEYS["Langfuse"],
        )
    if _not_http(base):
        return Finding(False, f"{env.LANGFUSE_BASE_URL}={base} is not an HTTP URL")
    answer = http_request(
        f"{base}/api/public/projects", {}, timeout, method="GET", basic_auth=(public, secret)
    )
    found = _answered("Langfuse", base, answer, "/api/public/projects")
    if found is not None:
        return found
    return Finding(True, f"Langfuse at {base} took the keys (HTTP {answer.status})")
