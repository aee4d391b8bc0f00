"""A provider whose task thread dies must not stall a round.

The broken provider's trainer raises on its first tasks. Each such task must be given back at
once (its claim released, not left to expire: the idle broken agent would take it again first,
and the other provider's claims of it were refused meanwhile), so the healthy provider finishes
the project. The broken agent logs each traceback and carries on; after three such failures in
a row it stops with a clear line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from daig.hyperparams import Hyperparameters
from tests.e2e.faults import FAULT_SETTINGS, FaultRun
from tests.helpers.cluster import Cluster
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
HERE = Path(__file__).parent
PARAMS = Hyperparameters(epochs=2, batch_size=32, total_tasks=4, task_size=2, passes=1)
TRACEBACK_LINE = "unexpected keyword argument 'suspender'"


def test_one_failed_task_is_given_back_and_the_agent_carries_on(
    cluster_factory, digits_files
) -> None:
    cluster, run = _start(cluster_factory, digits_files, failures=1)
    _finishes(run)

    claims = _claims(run, "broken")
    assert claims[0] == "released", f"given back at once, not left to expire: {claims}"
    assert "expired" not in claims, claims
    assert cluster.processes.processes["broken"].poll() is None, "it carries on"
    log = cluster.processes.log("broken")
    assert log.count(TRACEBACK_LINE) >= 1 and "Traceback" in log
    assert "stopping" not in log


def test_an_agent_that_fails_every_task_stops_and_the_round_completes(
    cluster_factory, digits_files
) -> None:
    cluster, run = _start(cluster_factory, digits_files, failures=1000)
    _finishes(run)

    claims = _claims(run, "broken")
    assert claims == ["released"] * 3, f"each given back at once, not left to expire: {claims}"
    broken = cluster.processes.processes["broken"]
    wait_until(lambda: broken.poll() is not None, 60, what="the broken agent to stop")
    log = cluster.processes.log("broken")
    assert "stopping: the agent itself failed 3 tasks in a row" in log
    winners = run.sql(
        "SELECT DISTINCT u.username FROM results r JOIN users u ON u.id = r.provider_id"
        " WHERE r.status = 'accepted'"
    )
    assert [row[0] for row in winners] == ["healthy"]


def _start(cluster_factory, digits_files, *, failures: int) -> tuple[Cluster, FaultRun]:
    """The broken provider alone until it claimed a task, then the healthy one beside it."""
    cluster = cluster_factory(**FAULT_SETTINGS)
    cluster.account("broken", "broken-pass").close()
    cluster.processes.start_argv(
        "broken",
        [sys.executable, str(HERE / "broken_provider.py"), "--server", cluster.api_url]
        + ["--user", "broken", "--failures", str(failures)],
        env={"DAIG_PASSWORD": "broken-pass"},
    )
    run = FaultRun.start(cluster, digits_files, providers=(), params=PARAMS)
    wait_until(lambda: _claims(run, "broken"), 120, what="the broken provider to claim a task")
    cluster.account("healthy", "healthy-pass").close()
    cluster.provider("healthy", "healthy", "healthy-pass")
    return cluster, run


def _finishes(run: FaultRun) -> None:
    final = wait_until(
        lambda: run.project().state in ("done", "failed") and run.project(),
        240,
        interval=1.0,
        what="the project to finish",
    )
    # Failed: a shard's messages were dead-lettered (redelivered past the queue's limit).
    assert final.state == "done", final.error


def _claims(run: FaultRun, user: str) -> list[str]:
    rows = run.sql(
        "SELECT c.state FROM claims c JOIN users u ON u.id = c.provider_id"
        " WHERE u.username = :user ORDER BY c.claimed_at",
        user=user,
    )
    return [row[0] for row in rows]
