"""Reading deploy/docker-compose.yml as docker compose would: variables from deploy/.env.example.

``interpolate`` implements the compose file's ``${VAR}``, ``${VAR:-default}``,
``${VAR:?error}`` and ``$$`` forms; ``Translation`` maps the compose network's hostnames
(postgres, rabbitmq, minio, api) onto the local test services, so each role can run here as
a process with the environment compose would give its container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DAIG_IMAGE_PREFIX = "${DAIG_IMAGE"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Substitute variables in every string of ``value`` as docker compose does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        if op in (":-", "-"):
            return current if current else arg
        if op in (":?", "?"):
            if not current:
                raise KeyError(f"compose needs {name}: {arg}")
            return current
        return current or ""

    return _VARIABLE.sub(substitute, value)


def raw_compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file with anchors merged and variables from ``.env.example`` filled in."""
    return dict(interpolate(raw_compose(), read_env_file() if env is None else env))


def daig_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the DAIG image (the ``daig`` command), by name."""
    raw = raw_compose()["services"]
    return {
        name: service
        for name, service in config["services"].items()
        if str(raw[name].get("image", "")).startswith(DAIG_IMAGE_PREFIX)
    }


def start_order(services: dict[str, dict[str, Any]]) -> list[str]:
    """Names in an order where every service comes after those it depends on."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in services:
            return
        for dependency in services[name].get("depends_on", {}):
            visit(dependency)
        order.append(name)

    for name in services:
        visit(name)
    return order


@dataclass
class Translation:
    """Compose-network addresses -> this machine's test services."""

    database_url: str
    amqp_url: str
    s3_endpoint: str
    api_port: int
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def url(self, value: str, service: str) -> str:
        parts = urlsplit(value)
        host = parts.hostname
        if parts.scheme.startswith("postgresql") and host == "postgres":
            local = urlsplit(self.database_url)
            return urlunsplit((parts.scheme, local.netloc, local.path, "", ""))
        if parts.scheme == "amqp" and host == "rabbitmq":
            return self.amqp_url
        if parts.scheme == "http" and host == "rabbitmq":
            return f"http://127.0.0.1:{parts.port}"
        if parts.scheme == "http" and host == "minio":
            return self.s3_endpoint
        if parts.scheme == "http" and host == "api":
            return f"http://127.0.0.1:{self.api_port}{parts.path}"
        if parts.scheme == "http" and host == "127.0.0.1" and parts.port is not None:
            return f"http://127.0.0.1:{self.port(parts.port, service)}{parts.path}"
        return value

    def port(self, port: int, service: str) -> int:
        if port == 8000:
            return self.api_port
        if port == 9100:
            return self.metrics_ports[service]
        return port

    def env(self, service: dict[str, Any], name: str) -> dict[str, str]:
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        translated = {k: self.url(v, name) if "://" in v else v for k, v in env.items()}
        if "DAIG_METRICS_PORT" in translated:
            translated["DAIG_METRICS_PORT"] = str(self.port(int(env["DAIG_METRICS_PORT"]), name))
        return translated

    def argv(self, words: list[str], name: str) -> list[str]:
        """A command's words with URLs and the API's port mapped (``--port 8000``)."""
        out: list[str] = []
        for i, word in enumerate(words):
            if "://" in word:
                word = self.url(word, name)
            elif i > 0 and words[i - 1] == "--port" and word.isdigit():
                word = str(self.port(int(word), name))
            elif i > 0 and words[i - 1] == "--host":
                word = "127.0.0.1"
            out.append(word)
        return out
