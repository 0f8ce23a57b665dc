"""What a plain install (without the [grpc] extra) does when gRPC is asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# A process in which grpcio and the SDK's gRPC exporters cannot be imported, as after
# `pip install otel-feedback` without the extra.
_WITHOUT_GRPC = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoGrpc(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            blocked = ("grpc.", "opentelemetry.exporter.otlp.proto.grpc")
            if name == "grpc" or name.startswith(blocked):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoGrpc())
    """
)


def run_without_grpc(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_TRACES_EXPORTER="otlp")
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_GRPC + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_grpc_without_the_extra_warns_once_naming_it() -> None:
    done = run_without_grpc(
        """
        import logging
        logging.basicConfig(level=logging.WARNING)
        import otel_feedback
        processor = otel_feedback.configure(exporters=["otlp", "console"])
        assert processor is not None  # the console exporter still works
        print("configured")
        """
    )
    assert done.returncode == 0, done.stderr
    assert "configured" in done.stdout
    lines = [x for x in done.stderr.splitlines() if "otel-feedback[grpc]" in x]
    # Spans and feedback fall back to OTLP/HTTP beside the gRPC endpoint, each said once.
    assert lines == [
        "WARNING:otel_feedback:The OTLP protocol is grpc but the gRPC exporter is not "
        "installed: sending spans over OTLP/HTTP to http://localhost:4318/v1/traces instead. "
        "For gRPC: pip install 'otel-feedback[grpc]'",
        "WARNING:otel_feedback:The OTLP protocol is grpc but the gRPC exporter is not "
        "installed: sending feedback over OTLP/HTTP to http://localhost:4318/v1/logs instead. "
        "For gRPC: pip install 'otel-feedback[grpc]'",
    ]
    assert "Traceback" not in done.stderr


def test_the_exporter_built_in_code_raises_the_same_message() -> None:
    done = run_without_grpc(
        """
        from otel_feedback import OTLPFeedbackExporter
        try:
            OTLPFeedbackExporter(protocol="grpc")
        except ImportError as error:
            print(error)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "OTLP over gRPC needs the grpc extra: pip install 'otel-feedback[grpc]' "
        "(or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
    )


def test_the_http_exporter_needs_no_grpc() -> None:
    done = run_without_grpc(
        """
        import os
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        from otel_feedback import OTLPFeedbackExporter
        OTLPFeedbackExporter()
        print("sys.modules has grpc:", "grpc" in __import__("sys").modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sys.modules has grpc: False"
