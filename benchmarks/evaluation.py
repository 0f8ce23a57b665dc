"""Evaluation: what online evaluation costs the application, offline throughput, a slow judge.

    python benchmarks/evaluation.py [--spans N] [--repeats R] [--offline-spans M]
        [--offline-rounds K] [--slow-seconds S] [--parts online,offline,slow] [--json PATH]

1. Online, on the application's thread: a root span started and ended through a
   TracerProvider with a FeedbackSpanProcessor (the floor), next to the same with an
   OnlineEvaluationProcessor added whose ``span_filter`` rejects the span, whose
   ``sample_rate`` (0.5) samples the span's trace out (every provider draws trace ids from
   the same generator, whose ids all fall outside half the traces), and which takes the span
   (an evaluator that returns None), and with a SpanProcessor that does nothing added (what
   any second processor costs in the SDK). Once for a bare span, once for an LLM span with
   OpenInference attributes. Only start and end are timed; the evaluations run in the
   background, and are waited for between timed runs, off the clock, so that the queue never
   fills. Then ``on_end`` alone, called on spans that ended already, and the wall time per
   span taken from its ``on_end`` to its evaluation's end, in the background. Two clocks, as in
   ``record_cost.py``: the application thread's CPU time, and wall time, which also holds
   what the evaluation thread takes from the application while it holds the GIL. The
   measures take turns in every repeat; medians and their ratios to the floor are printed.
2. Offline: ``otel-feedback evaluate`` over an OTLP/JSON lines file (the Collector's file
   exporter format, 100 spans a line) of M spans and of M/10, as a subprocess, with an
   evaluator that returns None, evaluator spans not exported (``OTEL_TRACES_EXPORTER=none``)
   and results to a JSON lines file: spans per second and the process's peak RSS (from
   ``wait4``), next to the same for a 100-span file (start-up and imports). The spans are
   LLM applications' traces: a chain root, an OpenInference LLM span, a GenAI chat span and
   an OpenInference tool span each.
3. A slow evaluator (it sleeps 1 s) under S seconds of 1,000 LLM spans a second, default
   queue and workers, a 2 s evaluation timeout: RSS and traced Python memory (tracemalloc)
   every second, and the processor's stats before and after its shutdown.

Compare ratios, not absolute figures: the machines are shared and noisy. ``--json`` writes
every figure to a file as well.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.util.types import Attributes

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    JudgedRun,
    OnlineEvaluationProcessor,
)

Clock = Callable[[], int]
Run = Callable[[Clock], float]

# Trace ids whose low 64 bits are at least 2**63: sample_rate=0.5 samples every one out.
_SAMPLED_OUT_BIT = 1 << 63

QUESTION = "How do I rotate the API key of my workspace without downtime for the running jobs?"
ANSWER = (
    "Create a second key under Settings > API keys, deploy it to your jobs, check that no "
    "request still uses the old key in the usage view, then revoke the old key."
)
SYSTEM = "You are the support assistant of Example Cloud. Answer from the documentation only."


def nothing(run: JudgedRun) -> None:
    """An evaluator that returns no result: what remains is the machinery's own cost."""


class Counting(FeedbackExporter):
    """Counts the records and keeps none, so that memory figures are the pipeline's."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        self.count += len(batch)
        return FeedbackExportResult.SUCCESS


class SampledOutIds(IdGenerator):
    """Random ids, as the SDK draws them, each trace id outside half of all traces."""

    def generate_span_id(self) -> int:
        return random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return random.getrandbits(128) | _SAMPLED_OUT_BIT


def llm_attributes(i: int) -> dict[str, Any]:
    """The attributes OpenInference's OpenAI instrumentation writes on a chat completion."""
    return {
        "openinference.span.kind": "LLM",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.2}',
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": SYSTEM,
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": f"{QUESTION} (ticket {i})",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": ANSWER,
        "llm.token_count.prompt": 48 + i % 17,
        "llm.token_count.completion": 41,
        "llm.token_count.total": 89 + i % 17,
    }


# --- 1. online: the application's thread ------------------------------------------------------


def interleaved_medians(runs: Sequence[Run], repeats: int) -> list[tuple[float, float]]:
    """Each run's medians by (thread CPU, wall) clock, the runs taking turns in every repeat."""
    samples: list[list[tuple[float, float]]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, kept in zip(runs, samples, strict=True):
            kept.append((run(time.thread_time_ns), run(time.perf_counter_ns)))
    return [
        (statistics.median(s[0] for s in kept), statistics.median(s[1] for s in kept))
        for kept in samples
    ]


class Setup:
    """One provider: a FeedbackSpanProcessor, and what is measured next to it."""

    def __init__(self, label: str, extra: SpanProcessor | None) -> None:
        self.label = label
        self.provider = TracerProvider(id_generator=SampledOutIds())
        self.provider.add_span_processor(FeedbackSpanProcessor(Counting()))
        self.extra = extra
        if extra is not None:
            self.provider.add_span_processor(extra)
        self.tracer = self.provider.get_tracer("bench")

    def settle(self) -> None:
        """Off the clock: the evaluations of what the timed run queued, and their records."""
        self.provider.force_flush()

    @property
    def online(self) -> OnlineEvaluationProcessor | None:
        return self.extra if isinstance(self.extra, OnlineEvaluationProcessor) else None


def setups() -> list[Setup]:
    made = [
        Setup("FeedbackSpanProcessor only (floor)", None),
        Setup("+ a SpanProcessor that does nothing", SpanProcessor()),
    ]
    for label, options in (
        ("+ OnlineEvaluationProcessor, span_filter rejects", {"span_filter": lambda _: False}),
        ("+ OnlineEvaluationProcessor, sampled out (0.5)", {"sample_rate": 0.5}),
        ("+ OnlineEvaluationProcessor, taken", {}),
    ):
        setup = Setup(label, None)
        processor = OnlineEvaluationProcessor([nothing], tracer_provider=setup.provider, **options)
        setup.provider.add_span_processor(processor)
        setup.extra = processor
        made.append(setup)
    return made


def span_runs(made: list[Setup], count: int, attributes: Attributes) -> list[Run]:
    def of(setup: Setup) -> Run:
        tracer = setup.tracer

        def run(clock: Clock) -> float:
            started = clock()
            for _ in range(count):
                with tracer.start_as_current_span("chat", attributes=attributes):
                    pass
            elapsed = clock() - started
            setup.settle()
            return elapsed / count / 1000

        return run

    return [of(setup) for setup in made]


def on_end_runs(made: list[Setup], spans: list[ReadableSpan]) -> list[Run]:
    """``on_end`` alone of the processor each setup adds, on spans that ended already."""

    def of(setup: Setup) -> Run:
        assert setup.extra is not None
        on_end = setup.extra.on_end

        def run(clock: Clock) -> float:
            started = clock()
            for span in spans:
                on_end(span)
            elapsed = clock() - started
            setup.settle()
            return elapsed / len(spans) / 1000

        return run

    return [of(setup) for setup in made]


def judging_time(setup: Setup, spans: list[ReadableSpan], rounds: int) -> float:
    """Median wall µs per span from its ``on_end`` to its evaluation's end, spans in a row."""
    assert setup.extra is not None
    on_end = setup.extra.on_end
    times = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for span in spans:
            on_end(span)
        setup.settle()
        times.append((time.perf_counter_ns() - started) / len(spans) / 1000)
    return statistics.median(times)


def ended_spans(count: int) -> list[ReadableSpan]:
    provider = TracerProvider(id_generator=SampledOutIds())
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(count):
        with tracer.start_as_current_span("chat", attributes=llm_attributes(i)):
            pass
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def online(count: int, repeats: int) -> dict[str, Any]:
    made = setups()
    spans = ended_spans(count)
    groups = {
        "bare root span, start+end": (made, span_runs(made, count, None)),
        "LLM root span (13 OpenInference attributes), start+end": (
            made,
            span_runs(made, count, llm_attributes(0)),
        ),
        "on_end alone of the processor added, on an ended LLM span": (
            made[1:],
            on_end_runs(made[1:], spans),
        ),
    }
    runs = [run for _, group in groups.values() for run in group]
    for run in runs:
        run(time.perf_counter_ns)  # warm up: the evaluation thread starts, caches fill
    medians = iter(interleaved_medians(runs, repeats))
    results: dict[str, Any] = {}
    print(f"{'median, us per span (ratio to the floor)':<58}{'thread CPU':>17}{'wall':>17}")
    for group, (chosen, _) in groups.items():
        print(f"-- {group}")
        rows = [(setup.label, next(medians)) for setup in chosen]
        floor_cpu, floor_wall = rows[0][1]
        kept = results[group] = {}
        for label, (cpu, wall) in rows:
            if chosen is made:
                print(
                    f"{label:<58}{cpu:>9.2f} {cpu / floor_cpu:>6.3f}x"
                    f"{wall:>9.2f} {wall / floor_wall:>6.3f}x"
                )
            else:  # no ratios: the floor is next to nothing
                print(f"{label.removeprefix('+ '):<58}{cpu:>9.2f} {'':>7}{wall:>9.2f}")
            kept[label] = {
                "thread_cpu_us": cpu,
                "thread_cpu_ratio": cpu / floor_cpu,
                "wall_us": wall,
                "wall_ratio": wall / floor_wall,
            }
    taken = made[-1]
    judged = judging_time(taken, spans, max(3, repeats // 4))
    print(
        f"-- in the background, taken: {judged:.1f} us wall from on_end to the evaluation's end "
        f"per span ({1e6 / judged:,.0f} spans/s), an evaluator that returns None"
    )
    results["background us per span judged"] = judged
    for setup in made:
        if setup.online is not None:
            stats = setup.online.stats()
            assert not stats.skipped.get("queue full (evaluators busy)"), stats
            print(f"   {setup.label}: {format_stats(asdict(stats))}")
    for setup in made:
        setup.provider.shutdown()
    return results


def format_stats(stats: dict[str, Any]) -> str:
    skipped = ", ".join(f"{reason}: {n}" for reason, n in stats["skipped"].items()) or "none"
    counts = ", ".join(f"{name} {stats[name]}" for name in ("queued", "succeeded", "timed_out"))
    return (
        f"{counts}, failed {stats['failed']}, pending {stats['pending']}, "
        f"running {stats['running']}; skipped: {skipped}"
    )


# --- 2. offline: otel-feedback evaluate -------------------------------------------------------

EVALUATORS = '''
"""The benchmark's evaluators, imported by otel-feedback evaluate."""

def nothing(run):
    return None
'''


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": value}


def otlp_span(
    ids: tuple[str, str, str | None], name: str, start_ns: int, attributes: dict[str, Any]
) -> dict[str, Any]:
    """A span in OTLP/JSON; ``ids``: its trace id, its span id and its parent's, in hex."""
    trace_id, span_id, parent = ids
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 850_000_000),
        "attributes": [{"key": k, "value": any_value(v)} for k, v in attributes.items()],
        "status": {"code": 1},
    }
    if parent is not None:
        span["parentSpanId"] = parent
    return span


def trace_spans(t: int, rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    """One request's spans, each with its instrumentation's scope name."""
    trace_id = f"{rng.getrandbits(128):032x}"
    root, llm, chat, tool = (f"{rng.getrandbits(64) | 1:016x}" for _ in range(4))
    start = 1_760_000_000_000_000_000 + t * 1_000_000_000
    question = f"{QUESTION} (ticket {t})"
    yield (
        "openinference.instrumentation.langchain",
        otlp_span(
            (trace_id, root, None),
            "support_answer",
            start,
            {
                "openinference.span.kind": "CHAIN",
                "input.value": question,
                "output.value": ANSWER,
                "session.id": f"session-{t % 997}",
                "user.id": f"user-{t % 331}",
            },
        ),
    )
    yield (
        "openinference.instrumentation.openai",
        otlp_span(
            (trace_id, llm, root),
            "ChatCompletion",
            start + 1_000_000,
            {
                **llm_attributes(t),
                "input.mime_type": "application/json",
                "input.value": json.dumps(
                    {
                        "model": "gpt-4o-mini",
                        "messages": [
                            {"role": "system", "content": SYSTEM},
                            {"role": "user", "content": question},
                        ],
                    }
                ),
                "output.mime_type": "application/json",
                "output.value": json.dumps(
                    {
                        "id": f"chatcmpl-{t}",
                        "choices": [{"message": {"role": "assistant", "content": ANSWER}}],
                        "usage": {"prompt_tokens": 48, "completion_tokens": 41},
                    }
                ),
            },
        ),
    )
    yield (
        "opentelemetry.instrumentation.openai_v2",
        otlp_span(
            (trace_id, chat, root),
            "chat gpt-4o-mini",
            start + 2_000_000,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.id": f"chatcmpl-{t}b",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.usage.input_tokens": 52,
                "gen_ai.usage.output_tokens": 37,
                "server.address": "api.openai.com",
                "server.port": 443,
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": ANSWER}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            },
        ),
    )
    yield (
        "openinference.instrumentation.langchain",
        otlp_span(
            (trace_id, tool, root),
            "search_docs",
            start + 3_000_000,
            {
                "openinference.span.kind": "TOOL",
                "tool.name": "search_docs",
                "input.value": "rotate API key",
                "output.value": "Settings > API keys: create, deploy, revoke.",
            },
        ),
    )


def write_otlp_json(path: Path, spans: int, per_line: int = 100) -> None:
    """``spans`` spans (a multiple of 4) as OTLP/JSON lines, ``per_line`` spans a line."""
    rng = random.Random(spans)
    resource_ = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": "support-bot"}},
            {"key": "deployment.environment", "value": {"stringValue": "production"}},
        ]
    }
    with path.open("w") as out:
        line: list[tuple[str, dict[str, Any]]] = []
        written = 0
        for t in range(spans // 4):
            line.extend(trace_spans(t, rng))
            if len(line) >= per_line or (t + 1) * 4 >= spans:
                scopes: dict[str, list[dict[str, Any]]] = {}
                for scope, span in line:
                    scopes.setdefault(scope, []).append(span)
                document = {
                    "resourceSpans": [
                        {
                            "resource": resource_,
                            "scopeSpans": [
                                {"scope": {"name": name}, "spans": kept}
                                for name, kept in scopes.items()
                            ],
                        }
                    ]
                }
                out.write(json.dumps(document, separators=(",", ":")) + "\n")
                written += len(line)
                line = []
    assert written == spans, (written, spans)


def run_evaluate(command: str, directory: Path, path: Path, spans: int) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of ``otel-feedback evaluate`` over ``path``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(
        PYTHONPATH=str(directory),
        OTEL_TRACES_EXPORTER="none",
        OTEL_PYTHON_FEEDBACK_EXPORTER="jsonl",
        OTEL_PYTHON_FEEDBACK_JSONL_PATH=str(directory / "feedback.jsonl"),
    )
    arguments = [command, "evaluate", "--evaluator", "bench_evaluators:nothing", str(path)]
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        child = subprocess.Popen(arguments, env=environment, stdout=output, stderr=output)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        said = output.read().decode(errors="replace")
    if child.returncode != 0 or f"judged {spans} of {spans} span(s)" not in said:
        raise RuntimeError(f"otel-feedback evaluate failed ({child.returncode}):\n{said}")
    # ru_maxrss: KiB on Linux, bytes on macOS.
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return elapsed, peak


def cli_command() -> str:
    beside = Path(sys.executable).parent / "otel-feedback"
    found = str(beside) if beside.exists() else shutil.which("otel-feedback")
    if found is None:
        raise SystemExit("otel-feedback is not installed beside this Python")
    return found


def offline(spans: int, rounds: int) -> dict[str, Any]:
    command = cli_command()
    sizes = [100, spans // 10, spans]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / "bench_evaluators.py").write_text(textwrap.dedent(EVALUATORS))
        files = {}
        for size in sizes:
            files[size] = directory / f"spans-{size}.jsonl"
            write_otlp_json(files[size], size)
        measured: dict[int, list[tuple[float, int]]] = {size: [] for size in sizes}
        for _ in range(rounds):
            for size in sizes:  # the sizes take turns
                measured[size].append(run_evaluate(command, directory, files[size], size))
        print(
            f"{'otel-feedback evaluate, an evaluator returning None':<44}{'file':>9}"
            f"{'seconds':>9}{'spans/s':>9}{'net':>8}{'peak RSS':>10}"
        )
        floor = statistics.median(s for s, _ in measured[sizes[0]])
        for size in sizes:
            seconds = statistics.median(s for s, _ in measured[size])
            peak = max(p for _, p in measured[size])
            mib = files[size].stat().st_size / 2**20
            rate = size / seconds
            # Net: past the start-up and the imports, the 100-span run's time.
            net = (size - sizes[0]) / (seconds - floor) if size > sizes[0] else None
            print(
                f"{f'{size:,} spans, median of {rounds}, highest RSS':<44}{mib:>6.1f}MiB"
                f"{seconds:>9.2f}{rate:>9,.0f}{f'{net:,.0f}' if net else '-':>8}"
                f"{peak / 2**20:>7.1f}MiB"
            )
            results[f"{size} spans"] = {
                "file_mib": mib,
                "seconds": seconds,
                "spans_per_s": rate,
                "net_spans_per_s": net,
                "peak_rss_mib": peak / 2**20,
                "all_seconds": [s for s, _ in measured[size]],
                "all_peak_rss_mib": [p / 2**20 for _, p in measured[size]],
            }
    return results


# --- 3. a slow evaluator under load -----------------------------------------------------------


def slow(seconds: float, rate: int) -> dict[str, Any]:
    def sleepy(run: JudgedRun) -> dict[str, Any]:  # noqa: ARG001 - its result needs no run
        time.sleep(1.0)
        return {"key": "slow", "score": 1}

    provider = TracerProvider()
    exporter = Counting()
    provider.add_span_processor(FeedbackSpanProcessor(exporter))
    # A timeout above the evaluator's second: each evaluation succeeds, and the shutdown
    # waits 2 s at most for the queued ones.
    processor = OnlineEvaluationProcessor(
        {"slow": sleepy}, evaluation_timeout_millis=2_000, tracer_provider=provider
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    page = resource.getpagesize()

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    tracemalloc.start()
    samples: list[dict[str, Any]] = []

    def sample(elapsed: float, ended: int) -> None:
        stats = processor.stats()
        samples.append(
            {
                "t_s": elapsed,
                "spans_ended": ended,
                "rss_mib": rss() / 2**20,
                "traced_mib": tracemalloc.get_traced_memory()[0] / 2**20,
                "queued": stats.queued,
                "pending": stats.pending,
                "running": stats.running,
                "succeeded": stats.succeeded,
                "queue_full": stats.skipped.get("queue full (evaluators busy)", 0),
            }
        )

    sample(0.0, 0)
    started = time.perf_counter()
    ended = 0
    next_sample = 1.0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate)
        while ended < due:
            with tracer.start_as_current_span("chat", attributes=llm_attributes(ended)):
                pass
            ended += 1
        if elapsed >= next_sample:
            sample(elapsed, ended)
            next_sample += 1.0
        time.sleep(0.001)
    sample(time.perf_counter() - started, ended)
    before = asdict(processor.stats())
    shutdown_started = time.perf_counter()
    processor.shutdown()
    shutdown_s = time.perf_counter() - shutdown_started
    after = asdict(processor.stats())
    provider.shutdown()
    tracemalloc.stop()
    threads = threading.active_count()

    print(
        f"{'t (s)':>6}{'spans ended':>13}{'RSS MiB':>9}{'traced MiB':>12}"
        f"{'queued':>8}{'pending':>9}{'running':>9}{'judged':>8}{'queue full':>12}"
    )
    for s in samples:
        print(
            f"{s['t_s']:>6.1f}{s['spans_ended']:>13,}{s['rss_mib']:>9.1f}{s['traced_mib']:>12.2f}"
            f"{s['queued']:>8,}{s['pending']:>9,}{s['running']:>9}{s['succeeded']:>8}"
            f"{s['queue_full']:>12,}"
        )
    print(f"stats before shutdown: {format_stats(before)}")
    print(f"stats after shutdown ({shutdown_s:.1f} s): {format_stats(after)}")
    print(f"feedback records exported: {exporter.count}; threads alive: {threads}")
    return {
        "samples": samples,
        "stats_before_shutdown": before,
        "stats_after_shutdown": after,
        "shutdown_s": shutdown_s,
        "records": exporter.count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=500, help="spans per timed online run")
    parser.add_argument("--repeats", type=int, default=31, help="online repeats (medians)")
    parser.add_argument("--offline-spans", type=int, default=100_000)
    parser.add_argument("--offline-rounds", type=int, default=2)
    parser.add_argument("--slow-seconds", type=float, default=10.0)
    parser.add_argument("--parts", default="online,offline,slow")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {}
    if "online" in parts:
        print("== 1. online: what on_end costs the application's thread")
        results["online"] = online(args.spans, args.repeats)
    if "offline" in parts:
        print("== 2. offline: otel-feedback evaluate")
        results["offline"] = offline(args.offline_spans, args.offline_rounds)
    if "slow" in parts:
        print(
            f"== 3. an evaluator that sleeps 1 s, under 1,000 spans/s for {args.slow_seconds:g} s"
        )
        results["slow"] = slow(args.slow_seconds, 1_000)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
