"""What ``import otel_feedback`` adds after ``import opentelemetry.sdk.trace``, in fresh processes.

    python benchmarks/import_time.py [--runs N]

Each run starts a new interpreter that imports the SDK's tracing, then otel_feedback, and
times each import; the medians are printed. ``-X importtime`` on the same command shows which
modules make up the figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_PROBE = """
import json, time
started = time.perf_counter()
import opentelemetry.sdk.trace
sdk = time.perf_counter()
import otel_feedback
ours = time.perf_counter()
print(json.dumps([sdk - started, ours - sdk]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    sdk_ms: list[float] = []
    ours_ms: list[float] = []
    for _ in range(args.runs):
        output = subprocess.run(
            [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True
        ).stdout
        sdk, ours = json.loads(output)
        sdk_ms.append(sdk * 1000)
        ours_ms.append(ours * 1000)
    print(f"import opentelemetry.sdk.trace        {statistics.median(sdk_ms):7.1f} ms (median)")
    print(f"import otel_feedback, after it        {statistics.median(ours_ms):7.1f} ms (median)")


if __name__ == "__main__":
    main()
