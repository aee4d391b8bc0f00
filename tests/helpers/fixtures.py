"""A pytest plugin of fixtures that tests in several directories share.

Registered by ``pytest_plugins`` in ``tests/conftest.py``, so a directory's tests use these
fixtures without a conftest importing another. ``cluster_factory`` and ``cluster`` start a
DAIG cluster of real processes (API, scheduler, aggregator) on the test's own database, vhost
and blob directory, for the end-to-end and GUI tests, and stop every process afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from daig_cli.cluster import LocalCluster, free_port
from tests.helpers.cluster import Cluster, ClusterFactory


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
