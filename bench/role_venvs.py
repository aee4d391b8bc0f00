"""One virtualenv per install role (base, server, server+keras, provider, gui, all), its size.

``python -m bench.role_venvs`` builds DAIG's wheel from this checkout, installs it with each
extra into a fresh virtualenv under a temporary directory (dependencies from a wheelhouse,
``.daig/wheelhouse``, filled from the package index the first time, so later runs only
unpack) and prints each one's size on disk, then removes them. The slow
tests in ``tests/ops/test_role_installs.py`` build their venvs with the same functions.

    .venv/bin/python -m bench.role_venvs                 # every role
    .venv/bin/python -m bench.role_venvs server provider # some (or a combination: server,gui)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# "server,keras" is the API's and the aggregator's image (Dockerfile target server-keras).
ROLES = ("base", "server", "server,keras", "keras", "provider", "gui", "all")
# What the roles must not bring: the point of the split (import names).
HEAVY = ("tensorflow", "keras", "PyQt5", "fastapi", "sqlalchemy", "sklearn")


@dataclass(frozen=True)
class RoleVenv:
    role: str
    path: Path
    seconds: float

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def daig(self) -> Path:
        return self.path / "bin" / "daig"

    def size_bytes(self) -> int:
        return directory_size(self.path)

    def importable(self, names: tuple[str, ...] = HEAVY) -> list[str]:
        """Which of ``names`` this venv's Python finds (without importing them)."""
        probe = (
            "import importlib.util, json, sys; "
            "print(json.dumps([n for n in sys.argv[1:] if importlib.util.find_spec(n)]))"
        )
        done = subprocess.run(
            [self.python, "-c", probe, *names],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.path,  # not the checkout: its packages would shadow the venv's
            env=clean_environment(),
        )
        return list(json.loads(done.stdout))


def clean_environment() -> dict[str, str]:
    """This environment without what would make a venv see the checkout's or the parent's
    packages (PYTHONPATH, VIRTUAL_ENV)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def build_wheel(dest: Path, root: Path = ROOT) -> Path:
    """DAIG's wheel built from ``root`` (no dependencies) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(root)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dest.glob("daig-*.whl")
    return wheel


def requirement(wheel: Path, role: str) -> str:
    return str(wheel) if role == "base" else f"daig[{role}] @ {wheel.as_uri()}"


def make_role_venv(
    wheel: Path,
    role: str,
    dest: Path,
    *,
    wheelhouse: Path | None = None,
    compile_bytecode: bool = True,
    timeout: float = 1800,
) -> RoleVenv:
    """A fresh virtualenv at ``dest`` with DAIG installed with ``role``'s extra.

    pip runs from this interpreter (``--python``), so the venv holds no pip of its own and its
    size is what the role installs. Dependencies come from ``wheelhouse`` (default
    ``.daig/wheelhouse``, or ``DAIG_WHEELHOUSE``) without asking an index; what it lacks is
    downloaded into it first, once (pip's own cache may be off or wiped; this one is ours).
    ``compile_bytecode=False`` skips writing .pyc files (TensorFlow has thousands of modules),
    for venvs that only run a few commands (the tests); sizes are measured with them.
    """
    wheelhouse = wheelhouse or default_wheelhouse()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    python = str(dest / "bin" / "python")
    offline = [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
    offline += ["--no-index", "--find-links", str(wheelhouse), requirement(wheel, role)]
    offline += [] if compile_bytecode else ["--no-compile"]
    done = subprocess.run(
        offline, capture_output=True, text=True, timeout=timeout, env=clean_environment()
    )
    if done.returncode != 0:
        _download(wheel, role, wheelhouse, timeout)
        done = subprocess.run(
            offline, capture_output=True, text=True, timeout=timeout, env=clean_environment()
        )
    if done.returncode != 0:
        raise RuntimeError(f"installing daig[{role}] failed:\n{done.stderr[-3000:]}")
    return RoleVenv(role, dest, time.monotonic() - started)


def default_wheelhouse() -> Path:
    return Path(os.environ.get("DAIG_WHEELHOUSE") or ROOT / ".daig" / "wheelhouse")


def _download(wheel: Path, role: str, wheelhouse: Path, timeout: float) -> None:
    """Every wheel ``role`` needs into ``wheelhouse``, from the indexes pip is configured for."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:"]
        + ["-d", str(wheelhouse), requirement(wheel, role)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environment(),
    )
    for stale in wheelhouse.glob("daig-*.whl"):
        stale.unlink()  # DAIG itself always comes from the wheel just built
    if done.returncode != 0:
        raise RuntimeError(f"downloading daig[{role}]'s wheels failed:\n{done.stderr[-3000:]}")


def directory_size(path: Path) -> int:
    """Bytes on disk of the files under ``path`` (each hard-linked file counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(directory, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roles", nargs="*", help=f"some of {', '.join(ROLES)} (default all)")
    args = parser.parse_args(argv)
    extras = {extra for role in ROLES for extra in role.split(",")}
    unknown = sorted({e for role in args.roles for e in role.split(",")} - extras)
    if unknown:
        parser.error(f"unknown extra(s) {', '.join(unknown)}: choose from {', '.join(ROLES)}")
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="daig-role-venvs-") as tmp:
        wheel = build_wheel(Path(tmp) / "wheel")
        for role in args.roles or ROLES:
            venv = make_role_venv(wheel, role, Path(tmp) / role.replace(",", "+"))
            size_mb, seconds = round(venv.size_bytes() / 2**20), round(venv.seconds)
            heavy = venv.importable()
            rows.append(
                {"role": role, "size_mb": size_mb, "install_seconds": seconds, "has": heavy}
            )
            print(
                f"{role:<13} {size_mb:>6} MB  installed in {seconds:>4} s  "
                f"has: {', '.join(heavy) or '-'}",
                flush=True,
            )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
