"""A real OTLP collector (Streamfold's rotel) for the tests, and the application sent through it.

``Rotel`` runs ``rotel-agent`` on 127.0.0.1 (ephemeral ports) in front of one or two of the
tests' receivers. ``python -m tests.collector`` is the application: it records spans, feedback
on live spans (span events), late feedback (carrier spans with a link) and feedback log records,
sends them over OTLP to the endpoints it is given, and writes what it sent to a manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).parent.parent
ROTEL_BIN_VARIABLE = "ROTEL_AGENT_BIN"
ROTEL_VENV = REPO / ".venv-rotel"
EVENT_NAME = "gen_ai.evaluation.result"
# 36,000 characters, 1 to 4 bytes each in UTF-8: well past any 16 or 32 KiB buffer.
LONG_COMMENT = ("é€😀a" * 9_000)[:36_000]


def rotel_bin() -> Path | None:
    """``rotel-agent``: ``$ROTEL_AGENT_BIN``, else the one of the wheel in ``.venv-rotel``.

    The wheel keeps the binary inside its package (``rotel/rotel-agent``), not in ``bin/``.
    """
    configured = os.environ.get(ROTEL_BIN_VARIABLE)
    if configured:
        path = Path(configured)
        return path if path.exists() else None
    found = sorted(ROTEL_VENV.glob("lib/python3*/site-packages/rotel/rotel-agent"))
    return found[-1] if found else None


def rotel_version(executable: Path) -> str:
    """What ``rotel-agent --version`` says (the binary's own version, not the wheel's)."""
    answer = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    return answer.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Rotel:
    """``rotel-agent start`` in the foreground; stopped by its PID.

    ``exporters`` maps an exporter name to ``(endpoint, protocol)``; ``traces`` and ``logs``
    name the exporters each signal goes to (rotel's ``--exporters-traces`` / ``--exporters-logs``).
    """

    def __init__(
        self,
        executable: Path,
        workdir: Path,
        *,
        exporters: Mapping[str, tuple[str, str]],
        traces: Sequence[str],
        logs: Sequence[str],
    ) -> None:
        self.grpc_port = _free_port()
        self.http_port = _free_port()
        self.log = workdir / "rotel.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        environment["ROTEL_EXPORTERS"] = ",".join(f"{name}:otlp" for name in exporters)
        for name, (endpoint, protocol) in exporters.items():
            environment[f"ROTEL_EXPORTER_{name.upper()}_ENDPOINT"] = endpoint
            environment[f"ROTEL_EXPORTER_{name.upper()}_PROTOCOL"] = protocol
        environment["ROTEL_EXPORTERS_TRACES"] = ",".join(traces)
        environment["ROTEL_EXPORTERS_LOGS"] = ",".join(logs)
        command = [
            str(executable),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--pid-file",
            str(workdir / "rotel.pid"),
            "--log-file",
            str(workdir / "rotel-daemon.log"),
        ]
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                command, env=environment, stdout=output, stderr=subprocess.STDOUT
            )
        self._wait_listening(timeout=30)

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def endpoint(self, protocol: str) -> str:
        return self.grpc_endpoint if protocol == "grpc" else self.http_endpoint

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = {self.grpc_port, self.http_port}
        while waiting:
            if self.process.poll() is not None:
                raise RuntimeError(f"rotel exited early:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rotel did not listen within {timeout}s")
            for port in sorted(waiting):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    waiting.discard(port)
                except OSError:
                    time.sleep(0.05)  # a server of ours starting up, not a background thread

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the application -----------------------------------------------------------------------


def _span_exporter(protocol: str, endpoint: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=f"{endpoint}/v1/traces")


def run_application(
    *, protocol: str, endpoints: Iterable[str], service: str, traces: int, manifest: Path
) -> None:
    """Record ``traces`` traces with feedback of every kind, send them, write the manifest.

    Each trace: a root and an ``llm`` child; feedback on the live child (a span event and a log
    record); late feedback on the ended child by its ids (a carrier span linked to it, and a
    log record). The first trace's live feedback carries ``LONG_COMMENT``.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from otel_feedback import (
        FeedbackExporter,
        FeedbackSpanProcessor,
        InMemoryFeedbackExporter,
        OTLPFeedbackExporter,
        record_feedback,
    )

    resource = Resource.create({"service.name": service, "deployment.environment.name": "ci"})
    provider = TracerProvider(resource=resource)
    sent_spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(sent_spans))
    exporters: list[FeedbackExporter] = []
    for endpoint in endpoints:
        provider.add_span_processor(BatchSpanProcessor(_span_exporter(protocol, endpoint)))
        if protocol == "grpc":
            exporters.append(
                OTLPFeedbackExporter(
                    protocol="grpc", endpoint=endpoint, insecure=True, resource=resource
                )
            )
        else:
            exporters.append(
                OTLPFeedbackExporter(endpoint=f"{endpoint}/v1/logs", resource=resource)
            )
    sent_feedback = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor([*exporters, sent_feedback])
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)  # carriers are made by the global provider
    tracer = provider.get_tracer("shop")

    for index in range(traces):
        with (
            tracer.start_as_current_span("request", attributes={"request.index": index}),
            tracer.start_as_current_span(
                "llm", attributes={"gen_ai.request.model": "m-1", "tokens": [index, 2 * index]}
            ) as llm,
        ):
            record_feedback(
                "correctness",
                score=index % 2,
                comment=LONG_COMMENT if index == 0 else f"answer {index}: ünïcode ✓",
                correction={"answer": index, "items": [1, 2.5, "drei"]},
                extra={"service": service},
            )
        context = llm.get_span_context()
        record_feedback(  # the trace has ended: a carrier span, linked to the judged span
            "user_rating",
            score=4.5,
            value="thumbs_up",
            trace_id=context.trace_id,
            run_id=context.span_id,
            user_id=f"user-{index}",
        )

    if not processor.force_flush(60_000) or not provider.force_flush(60_000):
        raise SystemExit("the application could not flush its spans and feedback")
    spans = [
        {
            "trace_id": span.context.trace_id,
            "span_id": span.context.span_id,
            "name": span.name,
            "links": [[link.context.trace_id, link.context.span_id] for link in span.links],
            "events": [event.name for event in span.events],
        }
        for span in sent_spans.get_finished_spans()
        if span.context is not None
    ]
    feedback = [record.model_dump(mode="json") for record in sent_feedback.get_finished_feedback()]
    manifest.write_text(json.dumps({"service": service, "spans": spans, "feedback": feedback}))
    stats = processor.stats()
    provider.shutdown()
    if processor.dropped_records:
        raise SystemExit(f"feedback dropped: {stats}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--protocol", choices=["http", "grpc"], required=True)
    parser.add_argument("--endpoint", action="append", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--traces", type=int, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    options = parser.parse_args(argv)
    run_application(
        protocol=options.protocol,
        endpoints=options.endpoint,
        service=options.service,
        traces=options.traces,
        manifest=options.manifest,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
