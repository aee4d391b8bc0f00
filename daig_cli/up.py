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

from rich.table import Table

from daig.settings import Settings
from daig.signals import stop_on_signals
from daig_cli.cluster import LocalCluster
from daig_cli.local_infra import services_reachable
from daig_cli.output import console


@dataclass(frozen=True)
class UpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    metrics_port: int = 9100  # scheduler; aggregators use the ports after it
    aggregators: int = 1
    log_dir: Path | None = None
    migrate: bool = True


def _default_log_dir() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "daig" / "logs"


def _start_roles(cluster: LocalCluster, options: UpOptions) -> list[str]:
    """API, scheduler and N aggregators; each worker serves metrics on its own port."""
    cluster.start_api()
    names = ["scheduler"] + [f"aggregator-{i + 1}" for i in range(options.aggregators)]
    for offset, name in enumerate(names):
        cluster.start_role(name, name.split("-")[0], metrics_port=options.metrics_port + offset)
    return ["api", *names]


def _report_death(cluster: LocalCluster, name: str) -> None:
    code = cluster.processes[name].returncode
    console.print(f"[red]{name} exited with {code}[/]; last lines of its log:")
    console.print(cluster.log(name)[-3000:], markup=False, highlight=False)


def run_up(options: UpOptions) -> int:
    from daig_cli.settings_check import require_valid_settings

    require_valid_settings(code=2)
    settings = Settings()
    log_dir = options.log_dir or _default_log_dir()
    if not services_reachable(settings.database_url, settings.amqp_url):
        return 2
    if options.migrate:
        from daig.db.migrate import upgrade

        with console.status("applying database migrations"):
            upgrade(settings.database_url)
        console.print("database schema is up to date")
    stop = stop_on_signals()
    cluster = LocalCluster.existing(log_dir, host=options.host, port=options.port)
    try:
        names = _start_roles(cluster, options)
        if not _wait_ready(cluster, names, stop, timeout=120.0):
            return 0 if stop.is_set() else 1
        _print_roles(cluster, names)
        while not stop.wait(1.0):
            dead = cluster.dead()
            if dead is not None:
                _report_death(cluster, dead)
                return 1
        console.print("stopping every role")
        return 0
    finally:
        cluster.close()


def _wait_ready(
    cluster: LocalCluster, names: list[str], stop: threading.Event, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    waiting = list(names)
    with console.status("") as status:
        while waiting and time.monotonic() < deadline and not stop.is_set():
            status.update(f"waiting for {', '.join(waiting)} to become healthy")
            dead = cluster.dead()
            if dead is not None:
                _report_death(cluster, dead)
                return False
            for name in list(waiting):
                if cluster.healthy(name):
                    console.print(f"[green]{name} is healthy[/]")
                    waiting.remove(name)
            time.sleep(0.5)
    if waiting and not stop.is_set():
        console.print(f"[red]not healthy after {timeout:.0f} s: {', '.join(waiting)}[/]")
        return False
    return not waiting


def _print_roles(cluster: LocalCluster, names: list[str]) -> None:
    table = Table(title="DAIG is up")
    for column in ("role", "pid", "health", "metrics"):
        table.add_column(column)
    for name in names:
        pid = str(cluster.processes[name].pid)
        table.add_row(name, pid, cluster.health_url(name), cluster.metrics_url(name))
    console.print(table)
    api_url = cluster.api_url
    console.print(
        f"logs in {cluster.log_dir}\nvolunteer: daig signup --server {api_url} --user NAME ; "
        f"daig provider --server {api_url} --user NAME --password-file FILE\n"
        "Ctrl-C stops every role"
    )
