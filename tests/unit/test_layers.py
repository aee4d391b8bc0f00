"""The packages' layers: each imports only what lies below it, lazy imports included.

    daig_cli                                  the ``daig`` command and local clusters: top
    requestor_gui                             may run the provider agent for a volunteer
    daig_api  daig_scheduler  daig_aggregator  provider_agent
    daig                                      the shared package: depends on nothing above

Imports inside functions and under ``TYPE_CHECKING`` count: a cycle hidden in a lazy import
is still a cycle. Nothing shipped imports ``tests`` or ``bench``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PACKAGES: dict[str, Path] = {
    "daig": ROOT / "daig",
    "daig_api": ROOT / "services" / "api" / "daig_api",
    "daig_scheduler": ROOT / "services" / "scheduler" / "daig_scheduler",
    "daig_aggregator": ROOT / "services" / "aggregator" / "daig_aggregator",
    "provider_agent": ROOT / "provider_agent",
    "requestor_gui": ROOT / "requestor_gui",
    "daig_cli": ROOT / "daig_cli",
}

# What each package may import of ours, besides itself.
ALLOWED: dict[str, set[str]] = {
    "daig": set(),
    "daig_api": {"daig"},
    "daig_scheduler": {"daig"},
    "daig_aggregator": {"daig"},
    "provider_agent": {"daig"},
    "requestor_gui": {"daig", "provider_agent"},
    "daig_cli": {
        "daig",
        "daig_api",
        "daig_scheduler",
        "daig_aggregator",
        "provider_agent",
        "requestor_gui",
    },
}

OURS = set(PACKAGES) | {"tests", "bench", "scripts", "services"}


def imported_top_levels(path: Path) -> set[tuple[str, int]]:
    """Every absolute import's top-level package in ``path``, with its line."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def violations(package: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    problems = []
    for path in sorted(PACKAGES[package].rglob("*.py")):
        for top, line in sorted(imported_top_levels(path)):
            if top in OURS and top not in allowed:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return problems


def test_every_package_is_checked() -> None:
    assert set(ALLOWED) == set(PACKAGES)
    for path in PACKAGES.values():
        assert (path / "__init__.py").is_file(), path


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_imports_only_layers_below(package: str) -> None:
    assert violations(package) == []


def test_the_check_catches_a_lazy_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from daig_api.main import app\n    return app\n")
    assert ("daig_api", 2) in imported_top_levels(module)


def test_no_bare_services_package_is_installed() -> None:
    """The services are installed as ``daig_api``, ... so nothing clashes in site-packages."""
    assert not (ROOT / "services" / "__init__.py").exists()
    for name in ("api", "scheduler", "aggregator"):
        assert not (ROOT / "services" / name / "__init__.py").exists()
