"""Forged and poisoned results against the real ``daig aggregator`` process.

A hostile provider claims real tasks over HTTP and publishes through the broker user the API
gave it: NaN, a huge norm, a wrong shape, and results for another provider's claim. Each is
recorded with its reason and none is counted; the project's honest results still close the
round, and the services keep running.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from bench.provider_broker import provider_broker
from daig.contract.messages import TrainResult, TrainTask, decode
from daig.hyperparams import Hyperparameters
from daig.weights.h5weights import read_weights
from tests.helpers.results import trained_result
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _result(grant: dict, provider_id: int, delta: list[np.ndarray] | None) -> TrainResult:
    return trained_result(grant, provider_id, delta, upload_statuses=(201,), samples=100)


def _reasons(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT message_id, coalesce(reason, status) FROM results"))
        found = {str(m): r for m, r in rows}
    engine.dispose()
    return found


def test_forged_and_poisoned_results_are_recorded_not_counted(cluster, digits_files) -> None:
    requestor = cluster.account("requestor", "requestor-pass")
    mallory = cluster.account("mallory", "mallory-pass")
    honest = cluster.account("honest", "honest-pass")
    project = requestor.create_project(
        "poison", Hyperparameters(total_tasks=6, task_size=6, max_norm_ratio=10)
    )
    for kind in ("model", "data", "labels"):
        requestor.upload_file(project.id, kind, getattr(digits_files, kind))
    requestor.start(project.id)

    # The scheduler publishes round 0's six tasks; take them off the queue as a provider would.
    tasks = []
    with provider_broker(honest) as broker:
        channel = broker.channel()

        def take() -> bool:
            method, _, body = channel.basic_get("daig.tasks", auto_ack=True)
            if method is not None:
                tasks.append(decode(TrainTask, body))
            return len(tasks) == 6

        wait_until(take, 60, interval=0.2, what="round 0's six task messages")
    task_ids = [task.task_id for task in tasks]

    weights = read_weights(digits_files.model)
    rng = np.random.default_rng(0)
    small = lambda: [(rng.standard_normal(w.shape) * 0.01).astype(w.dtype) for w in weights]  # noqa: E731
    honest_id, mallory_id = honest.me().id, mallory.me().id
    honest_grants = [honest.claim(t, "honest-agent") for t in task_ids[:4]]
    evil = [mallory.claim(t, "mallory-agent") for t in task_ids[4:]]

    sent: dict[str, str] = {}
    with provider_broker(honest) as good, provider_broker(mallory) as bad:
        for grant in honest_grants[:3]:  # three honest norms: the gate has a reference
            message = _result(grant, honest_id, small())
            good.publish(message)
            sent[str(message.message_id)] = "accepted"
        wait_until(
            lambda: sum(r == "accepted" for r in _reasons(cluster.database_url).values()) == 3,
            60,
            what="three honest results accepted",
        )
        nan = small()
        nan[0][0, 0] = np.nan
        poisoned = {
            "bad_delta": _result(evil[0], mallory_id, nan),
            "norm_outlier": _result(evil[1], mallory_id, [w * 1000 for w in small()]),
        }
        for reason, message in poisoned.items():
            bad.publish(message)
            sent[str(message.message_id)] = reason
        wait_until(
            lambda: (
                {str(m.message_id) for m in poisoned.values()}
                <= set(_reasons(cluster.database_url))
            ),
            60,
            what="the poisoned results",
        )
        # wrong shape: a delta for another model, sent again for the same (still open) claim
        wrong_shape = [np.zeros((3, 3), np.float32) for _ in weights]
        message = _result(evil[0], mallory_id, wrong_shape)
        bad.publish(message)
        sent[str(message.message_id)] = "bad_delta"
        # Mallory dresses up the honest provider's fourth result as her own, and as his
        forged = _result(honest_grants[3], mallory_id, small())
        bad.publish(forged)
        sent[str(forged.message_id)] = "wrong_provider"
        impersonating = _result(honest_grants[3], honest_id, small())
        bad.publish(impersonating)
        sent[str(impersonating.message_id)] = "wrong_provider"

        def all_recorded() -> dict[str, str] | None:
            found = _reasons(cluster.database_url)
            return found if set(sent) <= set(found) else None

        recorded = wait_until(all_recorded, 120, what="every result recorded")
    assert {m: recorded[m] for m in sent} == sent
    status = requestor.project(project.id)
    assert (status.round, status.accepted_tasks) == (0, 3), "nothing poisoned was counted"
    for name in ("api", "scheduler", "aggregator"):
        assert cluster.processes.processes[name].poll() is None, f"{name} died"
