"""Each DAIG service of the compose file runs its role's image (issue 15).

The Dockerfile builds one target per role, each installing only its extras; the compose file
gives every service the target whose extras hold what its ``daig`` command needs (the CLI's
own table, ``daig_cli.extras.COMMAND_EXTRAS``), and the lean targets stay lean.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from daig_cli.extras import COMMAND_EXTRAS
from tests.ops.compose import ROOT, compose, daig_services, read_env_file
from tests.ops.dockerfile import stages

SERVICE_TARGETS = {
    "migrate": "server",
    "scheduler": "server",
    "api": "server-keras",  # .keras uploads are converted with Keras
    "aggregator": "server-keras",  # held-out evaluation runs the model
    "provider-account": "provider",
    "provider": "provider",
}
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _expanded(extras: set[str]) -> set[str]:
    """``extras`` and every extra they pull in through ``daig[...]`` requirements."""
    result, pending = set(), list(extras)
    while pending:
        extra = pending.pop()
        if extra in result:
            continue
        result.add(extra)
        for requirement in EXTRAS[extra]:
            found = re.match(r"daig\[([^\]]+)\]", requirement)
            if found:
                pending += [e.strip() for e in found.group(1).split(",")]
    return result


def target_extras(target: str) -> set[str]:
    """The extras the target's dependency stage installs (``pip install ".[a,b]"``)."""
    runs = " ".join(args for word, args in stages()[f"deps-{target}"] if word == "RUN")
    found = re.findall(r'"\.\[([^\]]+)\]"', runs)
    assert len(found) == 1, runs
    return _expanded({extra.strip() for extra in found[0].split(",")})


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return daig_services(compose())


def test_every_daig_service_builds_and_runs_its_roles_target(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == set(SERVICE_TARGETS)
    stem = read_env_file()["DAIG_IMAGE"]
    for name, target in SERVICE_TARGETS.items():
        service = services[name]
        assert service["image"] == f"{stem}-{target}", (name, service["image"])
        assert service["build"]["target"] == target, name
        assert target in stages(), f"the Dockerfile has no target {target}"


def test_each_services_command_finds_its_extra_in_its_image(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, target in SERVICE_TARGETS.items():
        command = services[name]["command"][0]
        needed = COMMAND_EXTRAS.get(command)
        if needed is not None:
            assert needed in target_extras(target), (name, command, target)
    for name in ("api", "aggregator"):
        assert "keras" in target_extras(SERVICE_TARGETS[name]), name


def test_lean_targets_stay_lean() -> None:
    assert target_extras("server") == {"server"}
    assert target_extras("server-keras") == {"server", "keras"}
    assert target_extras("provider") == {"provider", "keras"}
