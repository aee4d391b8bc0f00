"""Before the ramp: the model and data files, the running projects, the volunteers' accounts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.dispatch.config import Config
from bench.dispatch.queues import QueueReader
from bench.harness import BenchCluster, write_mlp_project
from daig.contract.http import ProviderConfig
from daig.hyperparams import Hyperparameters


def write_files(directory: Path, config: Config) -> dict[str, Path]:
    """The model and data every project uses (one set: the projects are the same size)."""
    return write_mlp_project(directory, config.rows, hidden=config.hidden, seed=config.seed)


def project_parameters(config: Config) -> Hyperparameters:
    """One project's hyperparameters: an equal share of the total demand."""
    return Hyperparameters(
        epochs=1,
        batch_size=32,
        total_tasks=config.per_project(config.total_tasks),
        task_size=config.per_project(config.task_size),
        max_contributors=config.per_project(config.max_contributors),
        passes=config.passes,
    )


def start_projects(cluster: BenchCluster, files: dict[str, Path], config: Config) -> list[str]:
    """Create, upload and start the projects; wait until each one runs."""
    params = project_parameters(config)
    client = cluster.client("requestor")
    ids = []
    try:
        for index in range(config.projects):
            project = client.create_project(f"dispatch-scale-{index}", params)
            for kind, path in files.items():
                client.upload_file(project.id, kind, path)
            client.start(project.id)
            ids.append(str(project.id))
        deadline = time.monotonic() + 60
        while any(client.project(p).state != "running" for p in ids):
            if time.monotonic() > deadline:
                raise TimeoutError("the projects did not start running")
            time.sleep(0.2)
    finally:
        client.close()
    return ids


STABLE_SECONDS = 12.0  # over two of the management API's 5 s statistics refreshes


def wait_for_round_zero(cluster: BenchCluster, config: Config, timeout: float = 600) -> str:
    """Wait until the first rounds' task messages are in the tasks queue; say how it went.

    Starting the ramp while the scheduler is still publishing round 0 would measure that
    instead of steady dispatch. Done when the queue holds 90% of the first rounds' tasks, or
    when its depth has stopped changing (a server may keep fewer tasks queued ahead); after
    ``timeout`` the ramp starts anyway. Read from the management API (figures lag ~5 s).
    """
    params = project_parameters(config)
    expected = 0.9 * config.projects * min(params.task_size, params.contributors)
    reader = QueueReader(cluster.amqp_url)
    began = changed = time.monotonic()
    depth = -1
    try:
        while (now := time.monotonic()) - began < timeout:
            previous, depth = depth, reader.grouped().get("tasks", 0)
            if depth != previous:
                changed = now
            if depth >= expected or (depth > 0 and now - changed >= STABLE_SECONDS):
                return f"round 0: {depth} task messages queued after {now - began:.0f} s"
            time.sleep(1.0)
    finally:
        reader.close()
    return f"round 0: still only {depth} task messages queued after {timeout:.0f} s; going on"


@dataclass(frozen=True)
class Account:
    """A simulated volunteer's DAIG account: its token and its own broker user."""

    name: str
    token: str
    broker: ProviderConfig


def make_accounts(cluster: BenchCluster, count: int) -> list[Account]:
    """Sign up ``count`` accounts and fetch each one's broker settings (as the agent does)."""
    accounts = []
    for index in range(count):
        name = f"sim{index:03d}"
        client = cluster.client(name)
        try:
            broker = client.provider_config()
        finally:
            client.close()
        assert client.token is not None
        accounts.append(Account(name=name, token=client.token, broker=broker))
    return accounts
