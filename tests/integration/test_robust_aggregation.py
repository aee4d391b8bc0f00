"""Robust aggregation and the norm gate in the real aggregator, on real Postgres and blobs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from daig import keys
from daig.blobstore import BlobStore
from daig.hyperparams import Hyperparameters
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.results import Provider, claim_round, random_delta


def test_median_project_ignores_a_poisoned_update(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    server_blobs: BlobStore,
    schema: WeightSchema,
    digits_files,
    amqp_url: str,
) -> None:
    started = start_project(
        Hyperparameters(total_tasks=3, task_size=3, aggregation="median", max_norm_ratio=0)
    )
    honest = [random_delta(schema, seed) for seed in range(2)]
    poisoned = [tensor * -1000 for tensor in random_delta(schema, 7)]
    deltas = [*honest, poisoned]
    for grant, delta in zip(claim_round(provider, amqp_url), deltas, strict=True):
        verdict = aggregator.handle(provider.result(grant, delta))
        assert verdict is not None and verdict.status == "accepted"
    base = read_weights(digits_files.model)
    new = decode_weights(server_blobs.get_bytes(keys.weights_key(started.id, 1)), schema)
    for index, (weights, got) in enumerate(zip(base, new, strict=True)):
        median = np.median(np.stack([d[index].astype(np.float64) for d in deltas]), axis=0)
        np.testing.assert_allclose(got, weights + median, rtol=1e-6, atol=1e-7)
        assert np.abs(got - weights).max() < 1.0, "the poisoned update must not dominate"
    assert started.owner.project(started.id).hyperparameters.aggregation == "median"


def test_norm_gate_rejects_an_update_far_out_of_line(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=5, task_size=5, max_norm_ratio=10))
    grants = claim_round(provider, amqp_url)
    for seed, grant in enumerate(grants[:3]):
        assert (
            aggregator.handle(provider.result(grant, random_delta(schema, seed), samples=2)).status
            == "accepted"
        )
    huge = [tensor * 100 for tensor in random_delta(schema, 3)]
    verdict = aggregator.handle(provider.result(grants[3], huge, samples=2))
    assert (verdict.status, verdict.reason) == ("rejected", "norm_outlier")
    rounds = started.owner.rounds(started.id)
    assert rounds[0].rejected == 1 and rounds[0].accepted == 3
    # an ordinary update of the same size class is still accepted
    assert (
        aggregator.handle(provider.result(grants[4], random_delta(schema, 4), samples=2)).status
        == "accepted"
    )


def test_a_volunteers_resource_limit_does_not_count_against_the_project(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    sessions,
    amqp_url: str,
) -> None:
    from daig.contract.messages import TrainingStatus
    from daig.db.models import Result, Task

    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    grant = claim_round(provider, amqp_url)[0]
    for attempt in range(4):  # more than max_task_failures
        message = provider.result(
            grant,
            None,
            status=TrainingStatus.FAILED,
            resource_limit=True,
            error="needed more than the 512 MB this volunteer allows",
        )
        verdict = aggregator.handle(message)
        assert (verdict.status, verdict.reason) == ("failed", "resource_limit")
        if attempt < 3:
            grant = provider.claim(grant.task_id)
    with sessions() as session:
        task = session.get(Task, grant.task_id)
        # Given out again at once (its message in the outbox), not counted as a failure.
        assert task is not None and task.failures == 0 and task.state == "queued"
        reasons = session.query(Result.reason).filter(Result.task_id == task.id).all()
    assert {r for (r,) in reasons} == {"resource_limit"}
    assert started.owner.project(started.id).state == "running"
