"""Reading the Dockerfile as instructions and stages (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

from tests.ops.compose import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(word.upper(), rest.strip()) for word, _, rest in (x.partition(" ") for x in logical)]


def stages(path: Path = DOCKERFILE) -> dict[str, list[tuple[str, str]]]:
    """Each named stage's instructions, its FROM first (``FROM base AS name``)."""
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, args in instructions(path):
        if word == "FROM":
            parts = args.split()
            current = named.setdefault(parts[-1] if len(parts) >= 3 else parts[0], [])
        if current is not None:
            current.append((word, args))
    return named
