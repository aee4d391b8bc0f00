"""Which optional extra each ``daig`` command needs, and a clear refusal when it is missing.

Each role installs only its extra (``pip install 'daig[server]'``, ``daig[provider]``,
``daig[gui]``; pyproject.toml declares them). A command checks its extra's distributions
before it imports them, so a provider's venv answers ``daig api`` with the line to install
instead of an ImportError. What an extra holds is read from DAIG's installed metadata, the
same declaration pip installed from; a checkout run without an installed DAIG checks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from importlib import metadata

from rich.markup import escape

from daig_cli.output import fail

# The command -> the extra it needs (commands not listed need only the base install).
COMMAND_EXTRAS: dict[str, str] = {
    "api": "server",
    "scheduler": "server",
    "aggregator": "server",
    "migrate": "server",
    "audit": "server",
    "quarantine": "server",
    "up": "server",
    "provider": "provider",
    "gui": "gui",
    "demo": "all",
}

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_distributions(requires: Iterable[str], extra: str, project: str = "daig") -> list[str]:
    """The distributions ``project[extra]`` adds, following ``project[other]`` references.

    ``requires`` are requirement strings as in a wheel's metadata (``Requires-Dist``):
    ``"fastapi==0.165.0; extra == 'server'"``, ``"daig[keras]; extra == 'provider'"``.
    """
    by_extra: dict[str, list[tuple[str, list[str]]]] = {}
    for line in requires:
        spec, _, marker = line.partition(";")
        found = _NAME.match(spec)
        marked = _EXTRA_MARKER.search(marker)
        if found is None or marked is None:
            continue  # a base dependency, or one for another platform
        extras = [e.strip() for e in (found.group(2) or "").split(",") if e.strip()]
        by_extra.setdefault(_normalized(marked.group(1)), []).append((found.group(1), extras))
    names: list[str] = []
    pending, visited = [_normalized(extra)], set()
    while pending:
        current = pending.pop()
        if current in visited:
            continue
        visited.add(current)
        for name, extras in by_extra.get(current, []):
            if _normalized(name) == _normalized(project):
                pending.extend(_normalized(e) for e in extras)
            elif name not in names:
                names.append(name)
    return names


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def missing_for(
    extra: str,
    requires: Iterable[str] | None = None,
    installed: Callable[[str], bool] = _installed,
) -> list[str]:
    """Distributions of ``daig[extra]`` not installed here (``requires``: DAIG's metadata)."""
    if requires is None:
        try:
            requires = metadata.requires("daig") or []
        except metadata.PackageNotFoundError:
            return []  # a bare checkout: nothing declares the extras
    return [name for name in extra_distributions(requires, extra) if not installed(name)]


def install_hint(command: str, extra: str, missing: list[str]) -> str:
    return (
        f"`daig {command}` needs the {extra} extra: pip install 'daig[{extra}]' "
        f"(not installed here: {', '.join(missing)})"
    )


def require_extra(
    command: str,
    *,
    requires: Iterable[str] | None = None,
    installed: Callable[[str], bool] = _installed,
) -> None:
    """Exit with the install line if ``command``'s extra is not installed (``requires`` and
    ``installed`` as for ``missing_for``)."""
    extra = COMMAND_EXTRAS.get(command)
    if extra is None:
        return
    missing = missing_for(extra, requires, installed)
    if missing:
        fail(escape(install_hint(command, extra, missing)))  # [server] is not markup
