"""``otel-feedback doctor``: the effective configuration, and a probe of every endpoint."""

from __future__ import annotations

import urllib.parse

import click
from rich.table import Table
from rich.text import Text

from otel_feedback import _environment as env
from otel_feedback._cli._common import EXIT_OK, EXIT_REFUSED, out_console
from otel_feedback._cli._probes import (
    Finding,
    probe_jsonl,
    probe_otlp_grpc,
    probe_otlp_http,
    probe_phoenix,
    probe_writable,
)

__all__ = ["doctor"]


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3.0,
    show_default=True,
    help="Seconds each probe waits for an answer.",
)
@click.pass_context
def doctor(ctx: click.Context, timeout: float) -> None:
    """Show the effective configuration and probe each endpoint feedback goes to.

    Secrets (OTLP headers, the Phoenix API key, the token secret) are shown as set or unset,
    never their values. Probes send empty requests: no feedback is sent.

    Exit status: 0 feedback would be delivered, 1 something would lose feedback.
    """
    names = env.exporter_names()
    settings = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    settings.add_column(style="bold")
    settings.add_column()

    def setting(name: str, value: str) -> None:
        settings.add_row(name, Text(value))

    setting("exporters", ", ".join(names) or "none (feedback stays on the span events)")
    if "otlp" in names:
        setting("otlp protocol", env.otlp_logs_protocol())
        setting("otlp endpoint", _without_credentials(env.otlp_logs_endpoint()))
    if "phoenix" in names:
        setting("phoenix endpoint", _without_credentials(env.phoenix_endpoint()))
    if "jsonl" in names:
        setting("jsonl file", env.jsonl_path())
    spool = env.spool_path()
    setting("spool", f"on: {spool}" if spool else "off")
    options = env.processor_options()
    setting(
        "processor",
        f"queue {options.max_queue_size}, batch {options.max_export_batch_size}, "
        f"delay {options.schedule_delay_millis:g} ms, timeout {options.export_timeout_millis:g} ms",
    )
    setting("follow trace sampling", "yes" if env.follow_trace_sampling() else "no")
    for name in env.SECRET_VARIABLES:
        setting(name, "set" if env.secret_is_set(name) else "unset")
    out_console.print(Text("Configuration", style="bold underline"))
    out_console.print(settings)

    findings = _findings(names, spool, timeout)
    out_console.print()
    out_console.print(Text("Checks", style="bold underline"))
    for finding in findings:
        mark = Text("ok  ", style="green") if finding.ok else Text("FAIL", style="bold red")
        out_console.print(Text.assemble(mark, " ", finding.what))
        if finding.advice:
            out_console.print(Text("      -> " + finding.advice))
    problems = sum(not f.ok for f in findings)
    out_console.print()
    if problems:
        out_console.print(Text(f"{problems} problem(s): feedback would be lost", style="red"))
        ctx.exit(EXIT_REFUSED)
    out_console.print(Text("no problem found", style="green"))
    ctx.exit(EXIT_OK)


def _findings(names: tuple[str, ...], spool: str | None, timeout: float) -> list[Finding]:
    findings: list[Finding] = []
    if env.sdk_disabled():
        findings.append(
            Finding(False, "OTEL_SDK_DISABLED=true: record_feedback records nothing", "unset it")
        )
    if not names:
        findings.append(
            Finding(True, "no feedback exporter: records are not exported, only span events")
        )
    if "otlp" in names:
        endpoint = env.otlp_logs_endpoint()
        headers = env.otlp_logs_headers()
        if env.otlp_logs_protocol() == env.PROTOCOL_GRPC:
            findings.append(probe_otlp_grpc(endpoint, headers, timeout))
        else:
            findings.append(probe_otlp_http(endpoint, headers, timeout))
    if "phoenix" in names:
        findings.append(probe_phoenix(env.phoenix_endpoint(), env.phoenix_api_key(), timeout))
    if "jsonl" in names:
        findings.append(probe_jsonl(env.jsonl_path()))
    if "console" in names:
        findings.append(Finding(True, "console: records are printed on stdout"))
    if spool:
        findings.append(probe_writable(spool, "the spool"))
    return findings


def _without_credentials(url: str) -> str:
    # A URL may carry user:password@; only the rest is shown.
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
