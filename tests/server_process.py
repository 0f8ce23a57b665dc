"""A real server as a subprocess for the end-to-end tests: started, awaited healthy, stopped."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest


def installed(executable: Path | None, what: str) -> Path:
    """``executable``, or skip (fail under CI, which never skips) when it is not installed."""
    if executable is None:
        message = f"{what} is not installed: bash .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return executable


class ServerProcess:
    """Runs ``command`` with its output in ``log`` until ``health_path`` answers."""

    name = "server"

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        log: Path,
        environment: Mapping[str, str],
        health_path: str,
    ) -> None:
        self.port = port
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(
                list(command), env=dict(environment), stdout=output, stderr=subprocess.STDOUT
            )
        self._wait_healthy(health_path, timeout=120)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_healthy(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=2):
                    return
            except OSError:
                time.sleep(0.25)  # a server starting up, not a thread of ours
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {timeout}s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
