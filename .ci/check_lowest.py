"""Check that .ci/lowest.txt pins every dependency floor of pyproject.toml, exactly."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).parent.parent


def main() -> int:
    """Print each floor whose pin differs; 1 if any does."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["grpc"]]
    floors = {}
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", requirement)
        if match is None:
            print(f"no floor in {requirement!r}", file=sys.stderr)
            return 1
        floors[match[1].lower()] = match[2]
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / ".ci" / "lowest.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    # A floor of 1.40 is pinned as 1.40 or 1.40.0, never 1.40.1.
    wrong = {
        name: (floor, pins.get(name))
        for name, floor in floors.items()
        if not re.fullmatch(re.escape(floor) + r"(\.0)*", pins.get(name) or "")
    }
    for name, (floor, pin) in wrong.items():
        print(f"{name}: floor {floor} in pyproject.toml, pinned {pin} in .ci/lowest.txt")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
