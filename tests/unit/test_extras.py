"""Lean installs per role (issue 15): what each extra brings, and what each command needs.

The extras are read from this checkout's pyproject.toml, written as a wheel's metadata lists
them. The import checks run the CLI and the role entry points in a child whose import system
refuses the packages a role's venv would not have (the slow tests in
tests/ops/test_role_installs.py do it for real in separate virtualenvs).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer

from daig_cli.extras import (
    COMMAND_EXTRAS,
    extra_distributions,
    install_hint,
    missing_for,
    require_extra,
)

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVER_ONLY = ("fastapi", "SQLAlchemy", "alembic", "psycopg2-binary", "uvicorn", "boto3")


def _metadata_requires() -> list[str]:
    """``Requires-Dist`` lines as setuptools writes them from pyproject.toml."""
    lines = list(PROJECT["dependencies"])
    for extra, requirements in PROJECT["optional-dependencies"].items():
        lines += [f'{requirement}; extra == "{extra}"' for requirement in requirements]
    return lines


def _names(extra: str) -> set[str]:
    return {name.lower() for name in extra_distributions(_metadata_requires(), extra)}


def test_server_brings_no_tensorflow_and_no_qt() -> None:
    server = _names("server")
    assert {n.lower() for n in SERVER_ONLY} <= server
    assert not server & {"tensorflow", "keras", "pyqt5", "pyqtgraph", "scikit-learn"}


def test_provider_brings_tensorflow_but_no_server_parts_and_no_qt() -> None:
    provider = _names("provider")
    assert {"tensorflow", "keras", "pika"} <= provider
    assert not provider & {n.lower() for n in SERVER_ONLY}
    assert not provider & {"pyqt5", "pyqtgraph"}


def test_gui_can_volunteer_and_all_is_every_role() -> None:
    assert _names("provider") | {"pyqt5", "pyqtgraph"} == _names("gui")
    everything = _names("server") | _names("keras") | _names("provider") | _names("gui")
    assert everything | {"scikit-learn"} == _names("all")


def test_base_install_is_small_and_every_command_names_a_declared_extra() -> None:
    base = {requirement.split("=")[0].lower() for requirement in PROJECT["dependencies"]}
    assert base == {"h5py", "httpx", "numpy", "pydantic", "pydantic-settings", "rich", "typer"}
    assert set(COMMAND_EXTRAS.values()) <= set(PROJECT["optional-dependencies"])


def test_missing_for_lists_what_is_not_installed() -> None:
    installed = {"fastapi", "SQLAlchemy"}
    missing = missing_for("server", _metadata_requires(), installed=lambda n: n in installed)
    assert "alembic" in missing and "fastapi" not in missing and "SQLAlchemy" not in missing
    assert missing_for("server", _metadata_requires(), installed=lambda n: True) == []


def test_a_missing_extra_refuses_with_the_install_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    requires = _metadata_requires()
    provider_only = _names("provider") | {n.lower() for n in PROJECT["dependencies"]}
    with pytest.raises(typer.Exit) as exited:
        require_extra("api", requires=requires, installed=lambda n: n.lower() in provider_only)
    assert exited.value.exit_code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "`daig api` needs the server extra: pip install 'daig[server]'" in err
    assert "fastapi" in err
    # its extra is there: no exit; a base command: nothing to check
    require_extra("provider", requires=requires, installed=lambda n: n.lower() in provider_only)
    require_extra("project", requires=requires, installed=lambda n: False)
    assert install_hint("gui", "gui", ["PyQt5"]).endswith("(not installed here: PyQt5)")


BLOCKING = r"""
import importlib, sys
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this role's venv)")
        return None
sys.meta_path.insert(0, Block())
for module in sys.argv[2:]:
    importlib.import_module(module)
from daig_cli import app
from typer.testing import CliRunner
print(CliRunner().invoke(app, ["--help"]).exit_code)
"""
SERVER_IMPORTS = (
    "fastapi,starlette,uvicorn,sqlalchemy,alembic,boto3,botocore,prometheus_client,psycopg2,"
    "argon2,jwt,tenacity,multipart,uvloop,httptools"
)
ROLE_IMPORTS = {
    # role: (modules it must not need, modules it must import)
    "base": (
        f"{SERVER_IMPORTS},pika,tensorflow,keras,PyQt5,pyqtgraph,sklearn",
        ["daig_cli", "daig_cli.project", "daig_cli.credits"],
    ),
    "provider": (
        f"{SERVER_IMPORTS},PyQt5,pyqtgraph,sklearn",
        ["provider_agent.__main__", "provider_agent.agent", "provider_agent.training_child"],
    ),
    "server": (
        "tensorflow,keras,PyQt5,pyqtgraph,sklearn",
        ["daig_api.main", "daig_api.__main__", "daig_scheduler.__main__"]
        + ["daig_aggregator.__main__", "daig.db.migrate", "daig_cli.quarantine"],
    ),
    "gui": (f"{SERVER_IMPORTS},sklearn", ["requestor_gui.__main__", "requestor_gui.main_window"]),
}


@pytest.mark.parametrize("role", sorted(ROLE_IMPORTS))
def test_each_role_imports_without_the_other_roles_packages(role: str) -> None:
    blocked, modules = ROLE_IMPORTS[role]
    done = subprocess.run(
        [sys.executable, "-c", BLOCKING, blocked, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "0", done.stdout
