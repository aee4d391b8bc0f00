"""Fault tests: real processes, real broker, real database, faults injected mid-run.

For each case the project must complete with exactly R rounds, each closed by exactly K
accepted results, no result counted twice (weights recomputed from the accepted deltas), every
published result recorded, and held-out accuracy as good as the fault-free reference.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pika
import pytest

from daig.client import DaigClient
from daig.contract.messages import TrainingStatus, TrainResult
from daig.reference import reference_accuracy
from daig.topology import DEFAULT_RESULT_PARTITIONS, ResultPartitions
from daig_cli.local_infra import pg_ctlcluster
from daig_cli.rabbitmqctl import rabbitmqctl
from tests.e2e.faults import FAULT_SETTINGS, PARAMS, FaultRun, finish_and_verify
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def clean_accuracy(digits_files) -> float:
    """Held-out accuracy of the same K-batch SGD with no faults and no processes."""
    load = [
        np.load(p)
        for p in (
            digits_files.data,
            digits_files.labels,
            digits_files.test_data,
            digits_files.test_labels,
        )
    ]
    return reference_accuracy(digits_files.model, *load, PARAMS)


@pytest.fixture
def fault_cluster(cluster_factory):
    return cluster_factory(**FAULT_SETTINGS)


@pytest.mark.parametrize("service", ["aggregator", "scheduler", "api"])
def test_sigkill_of_a_service_mid_round(
    service, fault_cluster, digits_files, clean_accuracy, tmp_path
) -> None:
    run = FaultRun.start(fault_cluster, digits_files)
    run.wait_mid_round(1)
    fault_cluster.processes.kill(service)
    time.sleep(3)  # results and events pile up while it is gone
    if service == "api":
        fault_cluster.start_api()
    else:
        fault_cluster.processes.start(service, service)
    finish_and_verify(run, clean_accuracy, tmp_path)


def test_rabbitmq_restart_mid_run(fault_cluster, digits_files, clean_accuracy, tmp_path) -> None:
    run = FaultRun.start(fault_cluster, digits_files)
    run.wait_mid_round(1)
    rabbitmqctl("stop_app")
    try:
        time.sleep(3)
    finally:
        rabbitmqctl("start_app")
    finish_and_verify(run, clean_accuracy, tmp_path)
    for name in ("scheduler", "aggregator", "prov1", "prov2"):
        assert fault_cluster.processes.processes[name].poll() is None, f"{name} died"


def test_postgres_restart_mid_run(fault_cluster, digits_files, clean_accuracy, tmp_path) -> None:
    run = FaultRun.start(fault_cluster, digits_files)
    run.wait_mid_round(1)
    pg_ctlcluster("stop")
    try:
        time.sleep(4)
    finally:
        pg_ctlcluster("start")
    finish_and_verify(run, clean_accuracy, tmp_path)
    for name in ("api", "scheduler", "aggregator", "prov1", "prov2"):
        assert fault_cluster.processes.processes[name].poll() is None, f"{name} died"


def test_provider_sigkill_mid_task(fault_cluster, digits_files, clean_accuracy, tmp_path) -> None:
    run = FaultRun.start(fault_cluster, digits_files)
    wait_until(
        lambda: run.project().round >= 1 and run.active_claim_of("prov1"),
        180,
        interval=0.05,
        what="prov1 to hold a task in round 1",
    )
    fault_cluster.processes.kill("prov1")
    finish_and_verify(run, clean_accuracy, tmp_path)
    _lost_claim_was_taken_over(run)


def _lost_claim_was_taken_over(run: FaultRun) -> None:
    """prov1's last claim ended by lease expiry or by the straggler rule, and prov2 did it."""
    [(state, task_id)] = run.sql(
        "SELECT c.state, c.task_id FROM claims c JOIN users u ON u.id = c.provider_id "
        "WHERE u.username = 'prov1' ORDER BY c.claimed_at DESC LIMIT 1"
    )
    assert state in ("expired", "superseded"), state
    winner = run.sql(
        "SELECT u.username FROM results r JOIN users u ON u.id = r.provider_id "
        "WHERE r.task_id = :task AND r.status = 'accepted'",
        task=task_id,
    )
    assert winner == [("prov2",)]


def test_provider_that_hangs(fault_cluster, digits_files, clean_accuracy, tmp_path) -> None:
    run = FaultRun.start(fault_cluster, digits_files)
    wait_until(
        lambda: run.project().round >= 1 and run.active_claim_of("prov1"),
        180,
        interval=0.05,
        what="prov1 to hold a task in round 1",
    )
    fault_cluster.processes.signal_group("prov1", signal.SIGSTOP)  # alive but silent
    try:
        wait_until(
            lambda: run.project().state == "done",
            420,
            interval=1.0,
            what="prov2 to finish the project alone",
        )
    finally:
        fault_cluster.processes.signal_group("prov1", signal.SIGCONT)
    time.sleep(3)  # prov1 wakes up: its stale work must be refused, not counted
    finish_and_verify(run, clean_accuracy, tmp_path)
    _lost_claim_was_taken_over(run)


def test_slow_provider_triggers_redispatch(
    cluster_factory, digits_files, clean_accuracy, tmp_path
) -> None:
    cluster = cluster_factory(**FAULT_SETTINGS)
    run = FaultRun.start(cluster, digits_files, providers=("fast",))
    cluster.account("slow", "slow-pass").close()
    cluster.processes.start_argv(
        "slow",
        [
            sys.executable,
            str(HERE / "slow_provider.py"),
            "--server",
            cluster.api_url,
            "--user",
            "slow",
            "--delay",
            "60",
        ],
        env={"DAIG_PASSWORD": "slow-pass"},
    )
    finish_and_verify(run, clean_accuracy, tmp_path)
    reissued = run.sql("SELECT count(*) FROM tasks WHERE dispatches >= 2")
    assert reissued[0][0] >= 1
    assert "straggler" in cluster.processes.log("scheduler")
    slow_claims = run.sql(
        "SELECT count(*) FROM claims c JOIN users u ON u.id = c.provider_id "
        "WHERE u.username = 'slow'"
    )
    assert slow_claims[0][0] >= 1, "the slow provider should have held a task"


def _publish_raw(
    amqp_url: str,
    exchange: str,
    key: str,
    body: bytes,
    kind: str | None,
    user_id: str | None = None,
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            key,
            body,
            pika.BasicProperties(
                type=kind,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=str(uuid.uuid4()),
                user_id=user_id,
            ),
            mandatory=True,
        )
    finally:
        connection.close()


def test_duplicates_stale_results_and_garbage(
    fault_cluster, digits_files, clean_accuracy, tmp_path
) -> None:
    run = FaultRun.start(fault_cluster, digits_files)
    url = fault_cluster.amqp_url
    partitions = ResultPartitions(DEFAULT_RESULT_PARTITIONS)  # what the fault cluster runs
    garbage_partition = partitions.route(0)
    targets = [
        ("daig.tasks", "task", "daig.TrainTask"),
        ("daig.results", garbage_partition.publish_key, "daig.TrainResult"),
        ("daig.events", "event", "daig.ProjectEvent"),
    ]
    for exchange, key, kind in targets:
        _publish_raw(url, exchange, key, b"\x00 not json at all", kind)
        _publish_raw(url, exchange, key, json.dumps({"hello": "world"}).encode(), kind)
    _publish_raw(url, "daig.dead", "", b"garbage straight into the dead-letter queue", None)

    run.wait_mid_round(1)
    accepted = run.sql(
        "SELECT message_id, project_id, round_index, task_id, claim_id, provider_id, blob_key, "
        "samples FROM results WHERE status = 'accepted' ORDER BY round_index LIMIT 1"
    )[0]
    original = TrainResult(
        message_id=accepted.message_id,
        project_id=accepted.project_id,
        round=accepted.round_index,
        task_id=accepted.task_id,
        claim_id=accepted.claim_id,
        provider_id=accepted.provider_id,
        status=TrainingStatus.TRAINED,
        blob_key=accepted.blob_key,
        sha256="0" * 64,
        samples=accepted.samples,
    )
    replay = original.model_copy(update={"message_id": uuid.uuid4()})  # same task, new message
    unsigned = original.model_copy(update={"message_id": uuid.uuid4()})  # no broker user_id
    # The replays come from the claimant's own broker user, as its agent would send them.
    [(claimant,)] = run.sql("SELECT username FROM users WHERE id = :id", id=accepted.provider_id)
    provider = DaigClient(fault_cluster.api_url)
    provider.login(claimant, f"{claimant}-password")
    broker = provider.provider_config()
    provider.close()
    for message, as_provider in ((original, True), (replay, True), (unsigned, False)):
        _publish_raw(
            broker.amqp_url if as_provider else url,
            "daig.results",
            partitions.route_for(original.project_id).publish_key,
            message.model_dump_json().encode(),
            TrainResult.type_name,
            user_id=broker.broker_user if as_provider else None,
        )

    finish_and_verify(run, clean_accuracy, tmp_path)
    for name in ("api", "scheduler", "aggregator", "prov1", "prov2"):
        assert fault_cluster.processes.processes[name].poll() is None, f"{name} died"
    dead = run.sql("SELECT queue, reason FROM dead_letters")
    for queue in ("daig.tasks", garbage_partition.queue, "daig.scheduler.events"):
        assert sum(1 for q, reason in dead if q == queue and reason == "rejected") == 2, dead
    assert any(q == "unknown" for q, _ in dead), "garbage sent to daig.dead is recorded too"
    replayed = run.sql(
        "SELECT status, reason FROM results WHERE message_id = :id", id=str(replay.message_id)
    )
    assert replayed == [("rejected", "stale_round")] or replayed == [("rejected", "duplicate")]
    forged = run.sql(
        "SELECT status, reason FROM results WHERE message_id = :id", id=str(unsigned.message_id)
    )
    assert forged == [("rejected", "wrong_provider")], "a result nobody's broker user vouches for"
    same = run.sql(
        "SELECT count(*) FROM results WHERE message_id = :id", id=str(original.message_id)
    )
    assert same[0][0] == 1, "a redelivered message is recognised, not recorded twice"
