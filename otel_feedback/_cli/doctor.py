"""``otel-feedback doctor``: the effective configuration, and a probe of every endpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable

import click
from rich.table import Table
from rich.text import Text

from otel_feedback import _environment as env
from otel_feedback._cli._common import EXIT_OK, EXIT_REFUSED, SECONDS, out_console
from otel_feedback._cli._deadline import Deadline, exit_now
from otel_feedback._cli._probes import (
    Finding,
    probe_jsonl,
    probe_otlp_grpc,
    probe_otlp_http,
    probe_phoenix,
    probe_writable,
)
from otel_feedback._cli._redact import safe_url, scrub
from otel_feedback._cli._vendor_probes import probe_langfuse, probe_langsmith, probe_mlflow
from otel_feedback._evaluation.evaluators import load_evaluator
from otel_feedback._options import processor_options

__all__ = ["doctor"]


@click.command()
@click.option(
    "--timeout",
    type=SECONDS,
    default=5.0,
    show_default=True,
    help="Seconds the command may take in all; probes run side by side within it.",
)
@click.pass_context
def doctor(ctx: click.Context, timeout: float) -> None:
    """Show the effective configuration and probe each endpoint feedback goes to.

    Each exporter is checked as it will be used: its credentials are set, its endpoint
    answers, and the credentials are accepted. Secrets (OTLP headers, API keys, passwords,
    the token secret) are shown as set or unset, never their values, and URLs are shown
    without user info or query values. Probes send empty requests or reads: no feedback
    is sent.

    Exit status: 0 feedback would be delivered, 1 something would lose feedback.
    """
    deadline = Deadline(timeout)
    names = env.exporter_names()
    spool = env.spool_path()
    out_console.print(Text("Configuration", style="bold underline"))
    out_console.print(_settings(names, spool))

    findings = _findings(names, spool, deadline)
    out_console.print()
    out_console.print(Text("Checks", style="bold underline"))
    for finding in findings:
        mark = Text("ok  ", style="green") if finding.ok else Text("FAIL", style="bold red")
        out_console.print(Text.assemble(mark, " ", scrub(finding.what)))
        if finding.advice:
            out_console.print(Text("      -> " + scrub(finding.advice)))
    problems = sum(not f.ok for f in findings)
    out_console.print()
    if problems:
        out_console.print(Text(f"{problems} problem(s): feedback would be lost", style="red"))
        code = EXIT_REFUSED
    else:
        out_console.print(Text("no problem found", style="green"))
        code = EXIT_OK
    if any(thread.is_alive() for thread in _probe_threads):
        exit_now(code)  # a probe still blocked on a socket: the deadline is kept regardless
    ctx.exit(code)


def _settings(names: tuple[str, ...], spool: str | None) -> Table:
    settings = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    settings.add_column(style="bold")
    settings.add_column()

    def setting(name: str, value: str) -> None:
        settings.add_row(name, Text(scrub(value)))

    setting("exporters", ", ".join(names) or "none (feedback stays on the span events)")
    if "otlp" in names:
        setting("otlp protocol", env.otlp_logs_protocol())
        setting("otlp endpoint", safe_url(env.otlp_logs_endpoint()))
    if "phoenix" in names:
        setting("phoenix endpoint", safe_url(env.phoenix_endpoint()))
    if "langsmith" in names:
        setting("langsmith endpoint", safe_url(env.langsmith_endpoint()))
        setting("langsmith project", env.langsmith_project())
    if "mlflow" in names:
        setting("mlflow tracking uri", safe_url(env.mlflow_tracking_uri()))
    if "langfuse" in names:
        setting("langfuse url", safe_url(env.langfuse_base_url()))
    if "jsonl" in names:
        setting("jsonl file", env.jsonl_path())
    setting("spool", f"on: {spool}" if spool else "off")
    options = processor_options()
    setting(
        "processor",
        f"queue {options.max_queue_size}, batch {options.max_export_batch_size}, "
        f"delay {options.schedule_delay_millis:g} ms, timeout {options.export_timeout_millis:g} ms",
    )
    setting("follow trace sampling", "yes" if env.follow_trace_sampling() else "no")
    references = env.evaluator_references()
    if references:
        setting(
            "online evaluators",
            f"{', '.join(references)} (sample rate {env.evaluation_sample_rate():g})",
        )
    for name in env.SECRET_VARIABLES:
        settings.add_row(name, "set" if env.secret_is_set(name) else "unset")
    return settings


Probe = Callable[[float], Finding]


def _findings(names: tuple[str, ...], spool: str | None, deadline: Deadline) -> list[Finding]:
    findings: list[Finding] = []
    if env.sdk_disabled():
        findings.append(
            Finding(False, "OTEL_SDK_DISABLED=true: record_feedback records nothing", "unset it")
        )
    if not names:
        findings.append(
            Finding(True, "no feedback exporter: records are not exported, only span events")
        )
    remote: list[tuple[str, Probe]] = []
    if "otlp" in names:
        endpoint = env.otlp_logs_endpoint()
        headers = env.otlp_logs_headers()
        if env.otlp_logs_protocol() == env.PROTOCOL_GRPC:
            remote.append((endpoint, lambda t: probe_otlp_grpc(endpoint, headers, t)))
        else:
            remote.append((endpoint, lambda t: probe_otlp_http(endpoint, headers, t)))
    if "phoenix" in names:
        base, key = env.phoenix_endpoint(), env.phoenix_api_key()
        remote.append((f"Phoenix at {base}", lambda t: probe_phoenix(base, key, t)))
    if "langsmith" in names:
        remote.append((f"LangSmith at {env.langsmith_endpoint()}", probe_langsmith))
    if "mlflow" in names:
        remote.append((f"MLflow at {env.mlflow_tracking_uri()}", probe_mlflow))
    if "langfuse" in names:
        remote.append((f"Langfuse at {env.langfuse_base_url()}", probe_langfuse))
    findings.extend(_side_by_side(remote, deadline))
    if "jsonl" in names:
        findings.append(probe_jsonl(env.jsonl_path()))
    if "console" in names:
        findings.append(Finding(True, "console: records are printed on stdout"))
    if spool:
        findings.append(probe_writable(spool, "the spool"))
    findings.extend(_evaluator_findings())
    return findings


def _evaluator_findings() -> list[Finding]:
    """Whether each evaluator OTEL_PYTHON_FEEDBACK_EVALUATORS names can be loaded."""
    findings = []
    for reference in env.evaluator_references():
        try:
            load_evaluator(reference, argument=env.OTEL_PYTHON_FEEDBACK_EVALUATORS)
        except ValueError as error:
            findings.append(
                Finding(False, str(error), "fix the reference, or the module's import path")
            )
        else:
            findings.append(Finding(True, f"evaluator {reference}: loads"))
    return findings


# Probe threads still running when the command reports: the process then ends at once.
_probe_threads: list[threading.Thread] = []


def _side_by_side(probes: list[tuple[str, Probe]], deadline: Deadline) -> list[Finding]:
    """Run ``probes`` at once; one that has not finished by the deadline is a finding too.

    A socket timeout bounds each wait for a byte, not a whole answer: an endpoint that
    trickles a byte a second, or accepts and never answers, is only bounded here.
    """
    results: dict[int, Finding] = {}

    def work(index: int, label: str, probe: Probe) -> None:
        try:
            found = probe(max(0.05, deadline.left()))
        except Exception as error:  # noqa: BLE001 - a probe's failure is a finding
            found = Finding(False, f"{label}: the probe failed: {type(error).__name__}: {error}")
        results[index] = found

    for index, (label, probe) in enumerate(probes):
        thread = threading.Thread(
            target=work, args=(index, label, probe), name="otel-feedback.probe", daemon=True
        )
        thread.start()
        _probe_threads.append(thread)
    for thread in _probe_threads:
        thread.join(deadline.left())
    done = dict(results)
    return [
        done.get(index)
        or Finding(
            False,
            f"{label} gave no whole answer within --timeout {deadline.seconds:g} s",
            "it accepts connections but answers slowly or not at all: check it, or allow "
            "more time with --timeout",
        )
        for index, (label, _probe) in enumerate(probes)
    ]
