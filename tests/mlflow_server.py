"""A real MLflow tracking server for the end-to-end tests: 127.0.0.1, ephemeral port, temp store."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.otlp_receiver import free_port
from tests.server_process import ServerProcess

REPO = Path(__file__).parent.parent
MLFLOW_BIN_VARIABLE = "MLFLOW_BIN"
DEFAULT_MLFLOW_BIN = REPO / ".venv-mlflow" / "bin" / "mlflow"


def mlflow_bin() -> Path | None:
    """The ``mlflow`` executable: ``$MLFLOW_BIN``, else the one ``.ci/run`` installs."""
    path = Path(os.environ.get(MLFLOW_BIN_VARIABLE, DEFAULT_MLFLOW_BIN))
    return path if path.exists() else None


class MLflowServer(ServerProcess):
    name = "mlflow"

    def __init__(self, executable: Path, working_dir: Path) -> None:
        self.executable = executable
        port = free_port()
        command = [
            str(executable),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{working_dir / 'db.sqlite'}",
            "--default-artifact-root",
            str(working_dir / "artifacts"),
            "--workers",
            "1",
        ]
        super().__init__(
            command,
            port=port,
            log=working_dir / "mlflow.log",
            environment={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            health_path="/health",
        )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """MLflow's REST API; raises ``urllib.error.HTTPError`` on an error answer."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def create_experiment(self, name: str) -> str:
        reply = self.call("POST", "/api/2.0/mlflow/experiments/create", {"name": name})
        return str(reply["experiment_id"])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as MLflow's REST API shows it, or ``None`` when it has no such trace."""
        try:
            found = self.call("GET", f"/api/3.0/mlflow/traces/{trace_id}")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        trace: dict[str, Any] = found["trace"]
        return trace

    def assessments_through_client(self, trace_id: str) -> list[dict[str, Any]]:
        """The trace's assessments as MLflow's own Python client reads them (its venv)."""
        found: list[dict[str, Any]] = self._through_client(
            "print(json.dumps([a.to_dictionary() for a in trace.info.assessments]))\n", trace_id
        )
        return found

    def spans_through_client(self, trace_id: str) -> dict[str, Any]:
        """The trace's spans and the span MLflow's own client takes for its root (its venv)."""
        found: dict[str, Any] = self._through_client(
            "spans = [{'name': s.name, 'span_id': s.span_id, 'parent_id': s.parent_id}"
            " for s in trace.data.spans]\n"
            "root = trace.data._get_root_span()\n"
            "print(json.dumps({'spans': spans, 'root': root.name if root else None,"
            " 'assessments': len(trace.info.assessments)}))\n",
            trace_id,
        )
        return found

    def _through_client(self, printing: str, trace_id: str) -> Any:
        """What ``printing`` prints as JSON about ``trace`` (read by MLflow's own client)."""
        python = self.executable.parent / "python"
        script = (
            "import json, sys, mlflow\n"
            "mlflow.set_tracking_uri(sys.argv[1])\n"
            "trace = mlflow.get_trace(sys.argv[2])\n" + printing
        )
        done = subprocess.run(
            [str(python), "-c", script, self.url, trace_id],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
