"""A DAIG cluster of real OS processes (API, scheduler, aggregator, providers) per test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daig.client import DaigClient
from daig.cluster import LocalCluster, free_port


@dataclass
class Cluster:
    processes: LocalCluster
    api_url: str
    port: int
    database_url: str
    amqp_url: str
    home: Path

    def provider(self, name: str, user: str, password: str, *extra: str) -> None:
        self.processes.start(
            name,
            "provider",
            "--server",
            self.api_url,
            "--user",
            user,
            "--password",
            password,
            *extra,
        )

    def start_api(self) -> None:
        self.processes.start("api", "api", "--port", str(self.port))
        self.processes.wait_healthy(self.api_url)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``daig <args>`` as a user would, in this cluster's environment."""
        return subprocess.run(
            [sys.executable, "-m", "daig", *args],
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


@pytest.fixture
def cluster_factory(database_url: str, amqp_url: str, tmp_path: Path) -> Iterator[ClusterFactory]:
    """Start API, scheduler and aggregator with extra ``DAIG_*`` settings; stop all after."""
    started: list[LocalCluster] = []

    def start(**settings: str) -> Cluster:
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        env = {
            "DAIG_DATABASE_URL": database_url,
            "DAIG_AMQP_URL": amqp_url,
            "DAIG_BLOB_URL": (tmp_path / "blobs").as_uri(),
            "DAIG_PUBLIC_API_URL": api_url,
            "DAIG_SECRET_KEY": "e2e-secret-key-long-enough-for-hs256-signing",
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONUNBUFFERED": "1",
        } | {f"DAIG_{key.upper()}": value for key, value in settings.items()}
        processes = LocalCluster(env, tmp_path / "logs")
        started.append(processes)
        cluster = Cluster(processes, api_url, port, database_url, amqp_url, tmp_path)
        processes.start("scheduler", "scheduler")
        processes.start("aggregator", "aggregator")
        cluster.start_api()
        return cluster

    yield start
    for processes in started:
        processes.stop_all()
        if os.environ.get("DAIG_E2E_SHOW_LOGS"):
            for name in ("api", "scheduler", "aggregator"):
                print(f"==== {name}\n{processes.log(name)[-5000:]}")


@pytest.fixture
def cluster(cluster_factory: ClusterFactory) -> Cluster:
    return cluster_factory()
