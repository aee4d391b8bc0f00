"""``Cluster``: a DAIG cluster of real OS processes (API, scheduler, aggregator, providers).

The ``cluster`` and ``cluster_factory`` fixtures (in ``tests.helpers.fixtures``) start one per
test on ``daig_cli.cluster.LocalCluster``; end-to-end and GUI tests drive it through its
providers, its CLI and its accounts.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daig.client import DaigClient
from daig_cli.cluster import LocalCluster


@dataclass
class Cluster:
    processes: LocalCluster
    home: Path
    api_url: str = field(init=False)
    database_url: str = field(init=False)
    amqp_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.api_url = self.processes.api_url
        self.database_url = self.processes.database_url
        self.amqp_url = self.processes.amqp_url

    def provider(self, name: str, user: str, password: str, *extra: str) -> None:
        self.processes.start_provider(name, user, password, *extra)

    def start_api(self) -> None:
        self.processes.start_api()
        self.processes.wait_healthy()

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``daig <args>`` as a user would, in this cluster's environment."""
        return subprocess.run(
            [sys.executable, "-m", "daig_cli", *args],
            env=self.processes.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def account(self, user: str, password: str) -> DaigClient:
        client = DaigClient(self.api_url)
        client.signup(user, password)
        client.login(user, password)
        return client


ClusterFactory = Callable[..., Cluster]
