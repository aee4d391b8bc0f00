"""docs/operator-guide.md: its commands exist, name real services, and are the tested ones.

Every ``daig ...`` line in the guide's shell blocks must name a real subcommand with real
options, and each (subcommand, option) must be one the ops or end-to-end tests run; every
``docker compose`` line must name services and profiles the compose file has; every command
a DAIG compose service runs, and its healthcheck, must be in the guide.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from typer.main import get_command

from daig_cli import app
from tests.ops.compose import ROOT, compose, daig_services

GUIDE = ROOT / "docs" / "operator-guide.md"
TESTS = [*(ROOT / "tests" / "ops").glob("*.py"), *(ROOT / "tests" / "e2e").glob("*.py")]


def _shell_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _daig_argvs() -> list[list[str]]:
    """The ``daig`` invocations in the guide, run directly or inside a compose service."""
    argvs = []
    for line in _shell_lines():
        words = shlex.split(line.split("|")[0])
        if "daig" in words:
            argvs.append(words[words.index("daig") + 1 :])
    return argvs


def _resolve(argv: list[str]) -> tuple[list[str], Any, list[str]]:
    """(subcommand path, its command object, the remaining words)."""
    command: Any = get_command(app)
    path: list[str] = []
    rest = list(argv)
    # typer's groups have ``commands`` (typer ships its own click)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`daig {' '.join(argv)}`: no command {rest[0]!r}"
        path.append(rest.pop(0))
        command = sub
    return path, command, rest


def test_guide_has_the_commands_operators_need() -> None:
    text = GUIDE.read_text()
    for needed in (
        "docker compose up -d",
        "--scale provider=4",
        "--scale aggregator=2",
        "--profile monitoring",
        "pg_dump",
        "mc mirror",
        "daig up",
        "daig migrate",
    ):
        assert needed in text, needed
    for heading in ("Deploy", "Configure", "Scale", "Back up", "Rotate", "Upgrade", "Metrics"):
        assert re.search(rf"^## {heading}", text, flags=re.MULTILINE), heading
    assert "## Growing past one machine" in text


def test_every_daig_command_in_the_guide_exists_with_its_options() -> None:
    argvs = _daig_argvs()
    assert len(argvs) >= 8
    for argv in argvs:
        path, command, rest = _resolve(argv)
        assert path, argv
        known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"`daig {' '.join(argv)}`: no {word}"


def test_the_guides_daig_commands_are_the_ones_the_tests_run() -> None:
    sources = "\n".join(path.read_text() for path in TESTS)
    for argv in _daig_argvs():
        path, _command, rest = _resolve(argv)
        # tests pass the subcommand and each option as separate words: "up", "--port"
        for word in path:
            assert f'"{word}"' in sources, f"no test runs `daig {' '.join(path)}`"
        for option in (w.split("=")[0] for w in rest if w.startswith("--")):
            pattern = rf'"{re.escape(path[-1])}",[^\n]*"{re.escape(option)}"'
            pattern += rf'|"{re.escape(option)}"'
            assert re.search(pattern, sources), f"no test passes `daig {path[-1]} {option}`"


def _compose_services(line: str) -> tuple[set[str], set[str]]:
    """(services, profiles) a `docker compose ...` line names."""
    words = shlex.split(line.split("|")[0].split(">")[0].split("<")[0])
    words = words[words.index("compose") + 1 :]
    services: set[str] = set()
    profiles: set[str] = set()
    for i, word in enumerate(words):
        if word == "--profile":
            profiles.add(words[i + 1])
        if word == "--scale":
            services.add(words[i + 1].split("=")[0])
    if not words:
        return services, profiles
    verb = next(w for w in words if not w.startswith("-") and w not in profiles)
    after = words[words.index(verb) + 1 :]
    if verb in ("exec", "run"):
        skip_next = {"-v", "--entrypoint", "-e", "-u", "--user", "-w"}
        i = 0
        while i < len(after):
            if after[i] in skip_next:
                i += 2
            elif after[i].startswith("-"):
                i += 1
            else:
                services.add(after[i])
                break
    elif verb in ("stop", "restart", "logs", "build"):
        services |= {w for w in after if not w.startswith("-")}
    return services, profiles


def test_docker_compose_lines_name_real_services_and_profiles() -> None:
    config: dict[str, Any] = compose()
    services = set(config["services"])
    profiles = {p for s in config["services"].values() for p in s.get("profiles", [])}
    lines = [line for line in _shell_lines() if line.startswith("docker compose")]
    assert len(lines) >= 10
    text = GUIDE.read_text()
    inline = re.findall(r"`(docker compose [^`]+)`", text)
    for line in lines + inline:
        named, named_profiles = _compose_services(line)
        assert named <= services, f"{line}: no service {named - services}"
        assert named_profiles <= profiles, f"{line}: no profile {named_profiles - profiles}"


def test_every_compose_service_command_is_in_the_guide() -> None:
    text = GUIDE.read_text()
    for name, service in daig_services(compose()).items():
        command = "daig " + " ".join(service["command"][: 2 if name == "provider-account" else 1])
        assert command in text, f"{name}: `{command}` is not in the guide"
        test = service.get("healthcheck", {}).get("test")
        if test:
            probe = " ".join(test[1:])
            assert probe in text, f"{name}'s healthcheck `{probe}` is not in the guide"


@pytest.mark.parametrize(
    "path",
    ["deploy/.env.example", "deploy/prometheus/prometheus.yml", "deploy/grafana/dashboards/"],
)
def test_guide_names_files_that_exist(path: str) -> None:
    assert (ROOT / path).exists()
    assert path in GUIDE.read_text()
