"""The tests' OTLP receiver in a process of its own, for the benchmarks that send to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent
"""The repository: the receiver scripts import ``tests.otlp_receiver`` from it."""

sys.path.insert(0, str(REPO))
from tests.otlp_receiver import free_port  # noqa: E402 - the tests' own, once the repo is on the path

__all__ = ["REPO", "free_port", "start_receiver"]


def start_receiver(script: str, port: int, *args: str) -> subprocess.Popen[str]:
    """Run ``script`` (argv: repository, port, ``args``) and wait until it prints "ready"."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(REPO), str(port), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process
