"""A real Arize Phoenix server for the end-to-end tests: 127.0.0.1, ephemeral ports, temp dir."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.otlp_receiver import free_port
from tests.server_process import ServerProcess

REPO = Path(__file__).parent.parent
PHOENIX_BIN_VARIABLE = "PHOENIX_BIN"
DEFAULT_PHOENIX_BIN = REPO / ".venv-phoenix" / "bin" / "phoenix"


def phoenix_bin() -> Path | None:
    """The ``phoenix`` executable: ``$PHOENIX_BIN``, else the one ``.ci/run`` installs."""
    path = Path(os.environ.get(PHOENIX_BIN_VARIABLE, DEFAULT_PHOENIX_BIN))
    return path if path.exists() else None


class PhoenixServer(ServerProcess):
    name = "phoenix"

    def __init__(self, executable: Path, working_dir: Path) -> None:
        self.grpc_port = free_port()
        port = free_port()
        environment = dict(os.environ)
        environment.update(
            PHOENIX_WORKING_DIR=str(working_dir),
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(port),
            PHOENIX_GRPC_PORT=str(self.grpc_port),
            PHOENIX_TELEMETRY_ENABLED="false",
        )
        super().__init__(
            [str(executable), "serve"],
            port=port,
            log=working_dir / "phoenix.log",
            environment=environment,
            health_path="/healthz",
        )

    def get(self, path: str, **query: str) -> Any:
        url = f"{self.url}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def spans(self, project: str) -> list[dict[str, Any]]:
        try:
            data: list[dict[str, Any]] = self.get(f"/v1/projects/{project}/spans", limit="1000")[
                "data"
            ]
        except urllib.error.HTTPError as error:
            if error.code == 404:  # the project appears with its first span
                return []
            raise
        return data

    def span_annotations(self, project: str, span_ids: list[str]) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode([("span_ids", s) for s in span_ids] + [("limit", "1000")])
        with urllib.request.urlopen(
            f"{self.url}/v1/projects/{project}/span_annotations?{query}", timeout=10
        ) as response:
            data: list[dict[str, Any]] = json.loads(response.read())["data"]
            return data

    def wait_for(self, what: str, probe: Any, timeout: float = 60) -> Any:
        """Poll Phoenix (it ingests asynchronously) until ``probe()`` is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"Phoenix never showed {what}")
            time.sleep(0.25)  # an external server ingesting, not a thread of ours
