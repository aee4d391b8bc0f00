"""``daig up``: every server role as a local process, for developers and small installs.

Applies migrations, then starts the API, the scheduler and N aggregators (``python -m daig_cli
<role>``) against the RabbitMQ, PostgreSQL and blob store the ``DAIG_*`` settings name, waits
until each answers its ``/healthz``, and stays in the foreground. Ctrl-C (or SIGTERM) stops
them all; if one dies, the others are stopped too and its log tail is shown.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.table import Table

from daig.process import stop_on_signals
from daig.settings import Settings
from daig_cli.cluster import LocalCluster
from daig_cli.output import console


@dataclass(frozen=True)
class UpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    metrics_port: int = 9100  # scheduler; aggregators use the ports after it
    aggregators: int = 1
    log_dir: Path | None = None
    migrate: bool = True


@dataclass
class Role:
    name: str
    args: tuple[str, ...]
    health_url: str
    metrics_url: str
    cluster: LocalCluster  # one per role: each has its own DAIG_METRICS_PORT


def _default_log_dir() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "daig" / "logs"


def _roles(options: UpOptions, log_dir: Path, env: dict[str, str]) -> list[Role]:
    api = f"http://{_client_host(options.host)}:{options.port}"
    roles = [
        Role(
            "api",
            ("api", "--host", options.host, "--port", str(options.port)),
            f"{api}/healthz",
            f"{api}/metrics",
            LocalCluster(env, log_dir),
        )
    ]
    names = ["scheduler"] + [f"aggregator-{i + 1}" for i in range(options.aggregators)]
    for offset, name in enumerate(names):
        port = options.metrics_port + offset
        local = f"http://127.0.0.1:{port}"
        roles.append(
            Role(
                name,
                (name.split("-")[0],),
                f"{local}/healthz",
                f"{local}/metrics",
                LocalCluster(env | {"DAIG_METRICS_PORT": str(port)}, log_dir),
            )
        )
    return roles


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _dead(roles: list[Role]) -> Role | None:
    for role in roles:
        process = role.cluster.processes.get(role.name)
        if process is not None and process.poll() is not None:
            return role
    return None


def _report_death(role: Role) -> None:
    code = role.cluster.processes[role.name].returncode
    console.print(f"[red]{role.name} exited with {code}[/]; last lines of its log:")
    console.print(role.cluster.log(role.name)[-3000:], markup=False, highlight=False)


def run_up(options: UpOptions) -> int:
    from daig_cli.demo import _services_reachable
    from daig_cli.settings_check import require_valid_settings

    require_valid_settings(code=2)
    settings = Settings()
    log_dir = options.log_dir or _default_log_dir()
    api_url = f"http://{_client_host(options.host)}:{options.port}"
    env: dict[str, str] = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if "DAIG_PUBLIC_API_URL" not in os.environ:
        # The local blob store's presigned URLs point at the API this command starts.
        env["DAIG_PUBLIC_API_URL"] = api_url
    if not _services_reachable(settings.database_url, settings.amqp_url):
        return 2
    if options.migrate:
        from daig.db.migrate import upgrade

        with console.status("applying database migrations"):
            upgrade(settings.database_url)
        console.print("database schema is up to date")
    stop = stop_on_signals()
    roles = _roles(options, log_dir, env)
    try:
        for role in roles:
            role.cluster.start(role.name, *role.args)
        if not _wait_ready(roles, stop, timeout=120.0):
            return 0 if stop.is_set() else 1
        _print_roles(roles, log_dir, api_url)
        while not stop.wait(1.0):
            dead = _dead(roles)
            if dead is not None:
                _report_death(dead)
                return 1
        console.print("stopping every role")
        return 0
    finally:
        for role in roles:
            role.cluster.stop_all()


def _wait_ready(roles: list[Role], stop: threading.Event, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    waiting = {role.name: role for role in roles}
    with console.status("") as status:
        while waiting and time.monotonic() < deadline and not stop.is_set():
            status.update(f"waiting for {', '.join(waiting)} to become healthy")
            dead = _dead(roles)
            if dead is not None:
                _report_death(dead)
                return False
            for name, role in list(waiting.items()):
                if _healthy(role.health_url):
                    console.print(f"[green]{name} is healthy[/]")
                    del waiting[name]
            time.sleep(0.5)
    if waiting and not stop.is_set():
        console.print(f"[red]not healthy after {timeout:.0f} s: {', '.join(waiting)}[/]")
        return False
    return not waiting


def _print_roles(roles: list[Role], log_dir: Path, api_url: str) -> None:
    table = Table(title="DAIG is up")
    for column in ("role", "pid", "health", "metrics"):
        table.add_column(column)
    for role in roles:
        process = role.cluster.processes[role.name]
        table.add_row(role.name, str(process.pid), role.health_url, role.metrics_url)
    console.print(table)
    console.print(
        f"logs in {log_dir}\nvolunteer: daig signup --server {api_url} --user NAME "
        f"--password ... ; daig provider --server {api_url} --user NAME --password ...\n"
        "Ctrl-C stops every role"
    )
