"""Wall time of ``otel-feedback record``, ``import`` and ``doctor`` against endpoints that fail.

    .venv/bin/python benchmarks/cli_timeouts.py [TIMEOUT ...]

For each ``--timeout`` (default 1 and 3 s) and each kind of dead endpoint: closed (nothing
listens), unaccepted (listens, never accepts), silent (accepts, never answers), trickling (a
byte every 2 s), the command is run as a user runs it and its wall time printed, measured
from before the process is started to after it has ended. The promise is the timeout plus
about half a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).parent.parent
sys.path.insert(0, str(REPO))
from tests.test_cli_timeouts import RawServer  # noqa: E402 - the tests' own servers
from tests.vendor_standin import closed_url  # noqa: E402

COMMAND = Path(sys.executable).parent / "otel-feedback"
TRACE = "0af7651916cd43dd8448eb211c80319c"
LINES = "".join(f'{{"key": "k", "score": {i}, "trace_id": "{TRACE}"}}\n' for i in range(20))


def wall_time(args: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    clean.update(env)
    start = time.perf_counter()
    subprocess.run(
        [str(COMMAND), *args], input=stdin, capture_output=True, text=True, env=clean, check=False
    )
    return time.perf_counter() - start


def commands(url: str, timeout: str) -> dict[str, tuple[list[str], dict[str, str], str | None]]:
    otlp = {"OTEL_PYTHON_FEEDBACK_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": url}
    vendors = {
        "OTEL_PYTHON_FEEDBACK_EXPORTER": "langsmith,mlflow,langfuse,phoenix",
        "LANGSMITH_ENDPOINT": url,
        "LANGSMITH_API_KEY": "ls-key",
        "MLFLOW_TRACKING_URI": url,
        "LANGFUSE_BASE_URL": url,
        "LANGFUSE_PUBLIC_KEY": "pk",
        "LANGFUSE_SECRET_KEY": "sk",
        "PHOENIX_COLLECTOR_ENDPOINT": url,
    }
    record = ["record", "k", "--score", "1", "--trace-id", TRACE, "--timeout", timeout]
    return {
        "record (otlp)": (record, otlp, None),
        "import 20 lines (otlp)": (["import", "-", "--timeout", timeout], otlp, LINES),
        "doctor (otlp)": (["doctor", "--timeout", timeout], otlp, None),
        "doctor (4 vendors)": (["doctor", "--timeout", timeout], vendors, None),
    }


def main() -> None:
    timeouts = sys.argv[1:] or ["1", "3"]
    print(f"{'timeout':>7}  {'endpoint':<11}  {'command':<24}  wall time")
    for timeout in timeouts:
        for kind in ("closed", "unaccepted", "silent", "trickle"):
            server = None if kind == "closed" else RawServer(kind)
            url = closed_url() if server is None else server.url
            try:
                for name, (args, env, stdin) in commands(url, timeout).items():
                    seconds = wall_time(args, env, stdin)
                    over = seconds - float(timeout)
                    print(f"{timeout:>6}s  {kind:<11}  {name:<24}  {seconds:5.2f} s ({over:+.2f})")
            finally:
                if server is not None:
                    server.close()


if __name__ == "__main__":
    main()
