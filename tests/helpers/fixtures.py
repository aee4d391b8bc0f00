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

from daig_cli.cluster import LocalCluster
from tests.helpers.cluster import Cluster, ClusterFactory


@pytest.fixture
def cluster_factory(database_url: str, amqp_url: str, tmp_path: Path) -> Iterator[ClusterFactory]:
    """Start API, scheduler and aggregator with extra ``DAIG_*`` settings; stop all after."""
    started: list[LocalCluster] = []

    def start(**settings: str) -> Cluster:
        processes = LocalCluster.owned(
            tmp_path,
            database_url=database_url,
            amqp_url=amqp_url,
            secret="e2e-secret-key-long-enough-for-hs256-signing",
            # Replication is on where a test asks (test_cheating): the others count results.
            # A grant that pays for every test's projects (the default, 500, is the demo's
            # few runs); the tests of credit refusal set their own.
            settings={"replication": "false", "credit_signup_grant": "100000"} | settings,
            env={"TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        started.append(processes)
        cluster = Cluster(processes, tmp_path)
        processes.start_role("scheduler", "scheduler")
        processes.start_role("aggregator", "aggregator")
        cluster.start_api()
        return cluster

    yield start
    for processes in started:
        processes.close()
        if os.environ.get("DAIG_E2E_SHOW_LOGS"):
            for name in ("api", "scheduler", "aggregator"):
                print(f"==== {name}\n{processes.log(name)[-5000:]}")


@pytest.fixture
def cluster(cluster_factory: ClusterFactory) -> Cluster:
    return cluster_factory()
