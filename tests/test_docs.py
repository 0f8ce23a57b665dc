"""The documentation runs: every Python block and every shown command of README.md and docs/.

- Each fenced ```python block runs as written, in a process of its own, with a timeout. A block
  preceded by ``<!-- docs-test: continues -->`` runs after the block before it on the same page
  (the page shows that block first); one preceded by ``<!-- docs-test: in fastapi-app -->`` or
  ``in flask-app`` is a fragment that the page says goes into an existing ``app``: it runs after
  the few lines that make one (``APPS`` below).
- Each command of a ```bash block runs too: every ``otel-feedback`` command, and every
  ``opentelemetry-instrument`` command of an example, against a loopback OTLP receiver (the
  docs' ``localhost:4318`` and ``localhost:4317`` become its ports). The few commands that are
  not run here are listed in ``NOT_RUN`` with the reason; a command in neither fails the test.
- The ```yaml file for ``OTEL_CONFIG_FILE`` is written as ``otel.yaml`` and used by the command
  that names it; the ```json record validates as a ``Feedback``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from otel_feedback import Feedback
from tests.otlp_receiver import OTLPReceiver
from tests.test_first_snippet import FIRST_SNIPPET

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
TIMEOUT_S = 90
SECRET = "docs-test-secret-0123456789"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

APPS = {
    "fastapi-app": "from fastapi import FastAPI\n\napp = FastAPI()\n",
    "flask-app": "from flask import Flask\n\napp = Flask(__name__)\n",
}

# Commands shown but not run here, each with the reason (matched by their start).
NOT_RUN = {
    # The install is what made the venv running this; tests/test_examples.py runs the demo.
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python examples/quick": (
        "the first of the two commands: its demo runs in tests/test_examples.py"
    ),
    "bash .ci/run": "the second of the two commands: it is what runs this test",
    "python3 -m venv .venv && .venv/bin/pip install -e . 'opentelemetry-distro[otlp]'": (
        "an install: the test venv has these packages"
    ),
    "export PATH=": "the tests run the venv's commands by their path",
    # The vendors' own services cannot run here; their exporters are tested against loopback
    # stand-ins (LangSmith, Langfuse) and real servers (Phoenix, MLflow) in their own tests.
    "OTEL_PYTHON_FEEDBACK_EXPORTER=otlp,langsmith": "needs LangSmith and the reader's app.py",
    "OTEL_PYTHON_FEEDBACK_EXPORTER=otlp,langfuse": "needs Langfuse and the reader's app.py",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://localhost:5000/v1/traces": (
        "needs an MLflow server and the reader's app.py"
    ),
    "OTEL_SERVICE_NAME=support-bot OTEL_RESOURCE_ATTRIBUTES=openinference.project.name": (
        "needs a Phoenix server (tests/test_phoenix.py runs the same setup against one)"
    ),
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence
    language: str
    code: str
    mark: str  # the docs-test mark before it, or ""

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)", lines[i])
        if not fence:
            i += 1
            continue
        indent, language = fence.group(1), fence.group(2)
        start, body = i, []
        i += 1
        while not lines[i].startswith(f"{indent}```"):
            body.append(lines[i][len(indent) :])
            i += 1
        i += 1
        before = [line for line in lines[:start] if line.strip()]
        mark = re.match(r"<!-- docs-test: (.+?) -->", before[-1].strip()) if before else None
        found.append(
            Block(page, start + 1, language, "\n".join(body) + "\n", mark.group(1) if mark else "")
        )
    return found


ALL = [block for page in PAGES for block in blocks(page)]
PYTHON = [b for b in ALL if b.language == "python"]
BASH = [b for b in ALL if b.language == "bash"]


def commands(block: Block) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines left out."""
    joined = block.code.replace("\\\n", " ")
    return [c.strip() for c in joined.splitlines() if c.strip() and not c.lstrip().startswith("#")]


def program(block: Block) -> str:
    """The code a block runs as: after the block it continues, or inside the app it needs."""
    if block.mark == "continues":
        page = [b for b in PYTHON if b.page == block.page and b.line < block.line]
        assert page, f"{block.name}: continues, but no Python block comes before it"
        return program(page[-1]) + "\n" + block.code
    if block.mark.startswith("in "):
        return APPS[block.mark[3:]] + "\n" + block.code
    assert not block.mark, f"{block.name}: unknown mark {block.mark!r}"
    return block.code


def imported(code: str) -> set[str]:
    """The top-level packages a block imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


def environment(receiver: OTLPReceiver, *, bare: bool = False) -> dict[str, str]:
    """A user's environment: with ``bare``, only the receiver standing for localhost:4318."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
    )
    if bare:
        return env
    env.update(
        PYTHONPATH=str(ROOT),
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_PYTHON_FEEDBACK_TOKEN_SECRET=SECRET,
        TRACEPARENT=TRACEPARENT,
    )
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def test_the_pages_have_blocks_to_run() -> None:
    assert len(PYTHON) >= 10
    assert sum("otel-feedback " in c for b in BASH for c in commands(b)) >= 10


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.name)
def test_python_block_runs(block: Block, receiver: OTLPReceiver, tmp_path: Path) -> None:
    code = program(block)
    for name in imported(code):
        # The run against the lowest supported versions has no web framework.
        pytest.importorskip(name)
    script = tmp_path / "block.py"
    script.write_text(code)
    done = run([sys.executable, str(script)], tmp_path, environment(receiver))
    assert done.returncode == 0, f"{block.name}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, f"{block.name}\n{done.stderr}"
    assert "Dropped" not in done.stderr, f"{block.name}\n{done.stderr}"


def test_the_readmes_first_snippet_prints_its_feedback_at_once(tmp_path: Path) -> None:
    # No collector anywhere: the console exporter prints the record, in under 2 s.
    [first] = [b for b in PYTHON if b.page.name == "README.md" and "Console" in b.code]
    assert first.code == FIRST_SNIPPET  # tests/test_first_snippet.py's copy is the README's
    script = tmp_path / "first.py"
    script.write_text(first.code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    elapsed = []
    for _ in range(2):  # the better of two runs: the machine is shared
        began = time.monotonic()
        done = run([sys.executable, str(script)], tmp_path, env)
        elapsed.append(time.monotonic() - began)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["key"] == "correctness"
    assert min(elapsed) < 2.0, elapsed


def _files(cwd: Path, receiver: OTLPReceiver) -> None:
    """What the commands of the docs read: the files they name, and an OTEL_CONFIG_FILE."""
    record = json.loads(_json_record().code)
    line = json.dumps(record)
    (cwd / "feedback.jsonl").write_text(line + "\n")
    (cwd / "feedback-2026-11.jsonl").write_text(line + "\n")
    (cwd / "judged.jsonl").write_text(
        json.dumps({"key": "correctness", "score": 0, "trace_id": TRACEPARENT[3:35]}) + "\n"
    )
    (cwd / "labels.csv").write_text(f"key,score,traceparent\nthumbs,1,{TRACEPARENT}\n")
    (cwd / "traces.jsonl").write_text(json.dumps(_STORED_TRACE) + "\n")
    [config] = [b for b in ALL if b.language == "yaml" and "file_format" in b.code]
    (cwd / "otel.yaml").write_text(_loopback(config.code, receiver))


# One line of a Collector's file exporter: an LLM span of the support bot (OpenInference).
_STORED_TRACE = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "support-bot"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "openinference.instrumentation.openai"},
                    "spans": [
                        {
                            "traceId": TRACEPARENT[3:35],
                            "spanId": TRACEPARENT[36:52],
                            "name": "generate",
                            "kind": 3,
                            "startTimeUnixNano": "1764633600000000000",
                            "endTimeUnixNano": "1764633601000000000",
                            "attributes": [
                                {"key": key, "value": {"stringValue": value}}
                                for key, value in {
                                    "openinference.span.kind": "LLM",
                                    "input.value": "My order never came, this is awful!",
                                    "output.value": "Sorry! It ships tomorrow [kb-102].",
                                }.items()
                            ],
                            "status": {},
                        }
                    ],
                }
            ],
        }
    ]
}


def _loopback(text: str, receiver: OTLPReceiver) -> str:
    return text.replace("http://localhost:4318", receiver.http_endpoint).replace(
        "http://localhost:4317", receiver.grpc_endpoint
    )


def _json_record() -> Block:
    [record] = [b for b in ALL if b.language == "json" and '"feedback_source"' in b.code]
    return record


def _not_run(command: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)


SHOWN = [
    (block, command) for block in BASH for command in commands(block) if _not_run(command) is None
]


@pytest.mark.parametrize(("block", "command"), SHOWN, ids=[f"{b.name}:{c[:60]}" for b, c in SHOWN])
def test_shown_command_runs(
    block: Block, command: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    words = shlex.split(command)
    program_at = next(i for i, w in enumerate(words) if not re.match(r"^[A-Z_]+=", w))
    assert words[program_at] in {"otel-feedback", "opentelemetry-instrument"}, (
        f"{block.name}: {command!r} is neither run nor listed in NOT_RUN"
    )
    _files(tmp_path, receiver)
    env = environment(receiver, bare=words[program_at] == "opentelemetry-instrument")
    if words[program_at] == "otel-feedback":
        token = run(
            [
                str(BIN / "otel-feedback"),
                "token",
                "create",
                "--trace-id",
                TRACEPARENT[3:35],
                "--key",
                "user_rating",
            ],
            tmp_path,
            env,
        )
        assert token.returncode == 0, token.stderr
        env["TOKEN"] = token.stdout.strip()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    receiver.clear()
    done = run(["bash", "-c", _loopback(command, receiver)], tmp_path, env)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    if words[program_at] == "opentelemetry-instrument":
        feedback = (
            done.stdout.count('"key": ')
            + len(receiver.logs())
            + len((tmp_path / "feedback.jsonl").read_text().splitlines())
            - 1  # the line _files wrote
        )
        assert feedback >= 3, f"{command}\n{done.stdout}\n{done.stderr}"
    elif words[program_at + 1] in {"record", "import", "evaluate"}:
        assert receiver.logs(), f"{command}\n{done.stdout}\n{done.stderr}"


def test_the_config_file_is_complete_and_works(receiver: OTLPReceiver, tmp_path: Path) -> None:
    # The zero-code section's OTEL_CONFIG_FILE, used as it stands: spans over OTLP/HTTP, and
    # feedback over OTLP and into feedback.jsonl.
    pytest.importorskip("opentelemetry.configuration")
    [config] = [b for b in ALL if b.language == "yaml" and "file_format" in b.code]
    [command] = [c for b in BASH for c in commands(b) if c.startswith("OTEL_CONFIG_FILE=")]
    (tmp_path / "otel.yaml").write_text(_loopback(config.code, receiver))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    receiver.clear()
    done = run(["bash", "-c", command], tmp_path, environment(receiver, bare=True))
    assert done.returncode == 0, done.stderr
    assert {s.resource["service.name"] for s in receiver.spans()} == {"support-bot"}
    assert len(receiver.logs()) == 3
    assert len((tmp_path / "feedback.jsonl").read_text().splitlines()) == 3


def test_the_record_shown_is_a_record() -> None:
    record = Feedback.model_validate_json(_json_record().code)
    assert record.key == "correctness"


def test_every_command_not_run_is_still_shown() -> None:
    shown = [c for b in BASH for c in commands(b)]
    for start in NOT_RUN:
        assert any(c.startswith(start) for c in shown), start


def test_the_api_reference_shows_the_public_surface(tmp_path: Path) -> None:
    # The site as .ci/run builds it: every name of __all__ and of otel_feedback.web has its
    # entry in the reference generated from the docstrings.
    pytest.importorskip("mkdocstrings_handlers.python")
    import otel_feedback
    import otel_feedback.web

    site = tmp_path / "site"
    done = run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(site)],
        ROOT,
        {**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr
    page = (site / "api" / "index.html").read_text()
    names = [n for n in otel_feedback.__all__ if n != "__version__"]
    names += [f"web.{n}" for n in otel_feedback.web.__all__]
    missing = [n for n in names if f'id="otel_feedback.{n}"' not in page]
    assert missing == []
