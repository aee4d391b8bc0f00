"""Helpers are modules, not tests: the import rules of the ``tests`` and ``bench`` trees.

Nothing imports a test module (``test_*.py``) or a conftest: shared code lives in
``tests/helpers`` (fixtures shared across directories in the ``tests.helpers.fixtures``
plugin), and a benchmark imports nothing from ``tests`` at all. Checked on the source with
``ast``, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("tests", "bench")


def _sources() -> list[Path]:
    return sorted(path for tree in TREES for path in (ROOT / tree).rglob("*.py"))


def _package(path: Path) -> list[str]:
    """The package a source file's relative imports start from, as name parts."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts if parts[-1] == "__init__" else parts[:-1]


def imported_names(source: str, package: list[str]) -> Iterator[tuple[int, str]]:
    """Every module (and ``from`` name) ``source`` imports, as absolute dotted names."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:  # ``from tests.integration import test_x`` imports a module
                yield node.lineno, f"{module}.{alias.name}"


def _is_test_or_conftest(name: str) -> bool:
    return any(part == "conftest" or part.startswith("test_") for part in name.split("."))


def _violations(rule: Callable[[Path, str], bool]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _sources()
        for line, name in imported_names(path.read_text(), _package(path))
        if rule(path.relative_to(ROOT), name)
    ]


def test_the_check_sees_every_kind_of_import() -> None:
    source = (
        "import tests.conftest\n"
        "def f():\n"
        "    from .test_aggregator import Provider\n"
        "from tests.integration import test_cli_uploads\n"
        "from ..helpers.results import trained_result\n"
    )
    names = [name for _, name in imported_names(source, ["tests", "integration"])]
    assert {
        "tests.conftest",
        "tests.integration.test_aggregator.Provider",
        "tests.integration.test_cli_uploads",
        "tests.helpers.results.trained_result",
    } <= set(names)
    flagged = {name for name in names if _is_test_or_conftest(name)}
    assert flagged == {
        "tests.conftest",
        "tests.integration.test_aggregator",
        "tests.integration.test_aggregator.Provider",
        "tests.integration.test_cli_uploads",
    }


def test_nothing_imports_a_test_module_or_a_conftest() -> None:
    bad = _violations(lambda _, name: _is_test_or_conftest(name))
    assert bad == [], "move what is shared into tests/helpers (fixtures into a plugin)"


def test_benchmarks_import_nothing_from_tests() -> None:
    bad = _violations(lambda path, name: path.parts[0] == "bench" and name.split(".")[0] == "tests")
    assert bad == [], "benchmarks may not depend on test code: share it through bench/"


def test_no_conftest_registers_a_plugin_module_of_tests() -> None:
    """``pytest_plugins`` name plugin modules, which must not be test modules either."""
    bad = []
    for path in (ROOT / "tests").rglob("conftest.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets
            ):
                plugins = ast.literal_eval(node.value)
                bad += [name for name in plugins if _is_test_or_conftest(name)]
    assert bad == []
