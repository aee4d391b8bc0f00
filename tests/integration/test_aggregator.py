"""The aggregator's ``handle`` on real results: projects started and tasks claimed over the real
API, synthetic deltas uploaded to the claims' presigned URLs, everything recorded in Postgres.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.provider_broker import provider_broker
from daig import keys
from daig.blobstore import BlobStore
from daig.broker import BrokerSession
from daig.client import ClientError
from daig.contract.messages import TrainingStatus, TrainResult
from daig.db.models import Project, Result, Task
from daig.hyperparams import Hyperparameters
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights
from daig_scheduler.handlers import Scheduler
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.queues import consuming_results, drain, drain_tasks, ready_count, results_ready
from tests.helpers.results import ROWS, Provider, claim_round, random_delta
from tests.helpers.stragglers import make_straggler
from tests.helpers.waiting import wait_until


def _results(sessions: sessionmaker[Session], project_id: uuid.UUID) -> list[Result]:
    with sessions() as session:
        query = select(Result).where(Result.project_id == project_id).order_by(Result.received_at)
        return list(session.scalars(query))


def _project(sessions: sessionmaker[Session], project_id: uuid.UUID) -> Project:
    with sessions() as session:
        project = session.get(Project, project_id)
        assert project is not None
        return project


def _raw_upload(provider: Provider, grant: dict[str, Any], body: bytes) -> TrainResult:
    assert httpx.put(grant.result_url, content=body).status_code == 201
    return provider.result(grant, None, sha256=hashlib.sha256(body).hexdigest())


def _stored_directly(
    blobs: BlobStore, provider: Provider, grant: dict[str, Any], body: bytes
) -> TrainResult:
    blobs.put_bytes(grant.result_key, body)
    return provider.result(grant, None, sha256=hashlib.sha256(body).hexdigest())


def test_k_accepted_results_close_the_round_with_the_weighted_mean(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    server_blobs: BlobStore,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    digits_files,
    amqp_url: str,
    tmp_path: Path,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=2))
    grants = claim_round(provider, amqp_url)
    deltas = [random_delta(schema, seed) for seed in range(3)]
    verdicts = []
    for grant, delta in zip(grants, deltas, strict=True):
        # The provider's sample count is not trusted: the server weighs by its own row count.
        verdicts.append(aggregator.handle(provider.result(grant, delta, samples=1000)))
    assert [(v.status, v.round_closed) for v in verdicts] == [
        ("accepted", False),
        ("accepted", False),
        ("accepted", True),
    ]
    base = read_weights(digits_files.model)
    new = decode_weights(server_blobs.get_bytes(keys.weights_key(started.id, 1)), schema)
    for index, (weights, got) in enumerate(zip(base, new, strict=True)):
        mean = sum(ROWS[s] * deltas[s][index].astype(np.float64) for s in range(3)) / 10
        np.testing.assert_allclose(got, weights + mean, rtol=1e-6, atol=1e-7)
        unweighted = sum(deltas[s][index].astype(np.float64) for s in range(3)) / 3
        assert not np.allclose(got, weights + unweighted, rtol=0, atol=1e-6)

    project = _project(sessions, started.id)
    assert project.current_round == 1 and project.state == "running"
    assert project.final_model_key is None  # one more round to go
    status = started.owner.project(started.id)
    assert (status.round, status.accepted_tasks, status.progress) == (1, 3, 0.5)
    assert status.latest_metrics["loss"] == pytest.approx((3 * 1 + 3 * 2 + 4 * 3) / 10)
    round_zero, round_one = started.owner.rounds(started.id)
    assert (round_zero.accepted, round_zero.rejected) == (3, 0)
    assert round_zero.metrics["samples"] == 10 and round_zero.closed_at is not None
    assert round_one.closed_at is None  # opened by the same transaction
    assert [r.samples for r in _results(sessions, started.id)] == [3, 3, 4]

    # Round 1's tasks wait in the outbox for whoever publishes it (here the scheduler); the
    # current model is weights version 1.
    scheduler.reconcile(started.id, broker_session)
    assert {(m.round, m.shard) for m in drain_tasks(amqp_url)} == {(1, 0), (1, 1), (1, 2)}
    assert started.owner.download_model(started.id, tmp_path / "v1.h5").weights_version == "1"
    for got, want in zip(read_weights(tmp_path / "v1.h5"), new, strict=True):
        np.testing.assert_array_equal(got, want)


def test_last_round_writes_a_final_model_that_loads(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    server_blobs: BlobStore,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
    tmp_path: Path,
) -> None:
    from daig.modelfile.keras_load import canonical_weights, load_model

    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    for seed, grant in enumerate(claim_round(provider, amqp_url)):
        verdict = aggregator.handle(provider.result(grant, random_delta(schema, seed)))
        assert verdict is not None and verdict.status == "accepted"
    assert verdict.round_closed
    project = _project(sessions, started.id)
    assert project.final_model_key == keys.final_model_key(started.id)
    final = tmp_path / "final.h5"
    server_blobs.download(project.final_model_key, final)
    model, info = load_model(final)
    assert info.input_shape == (64,)
    weights = decode_weights(server_blobs.get_bytes(keys.weights_key(started.id, 1)), schema)
    for got, want in zip(canonical_weights(model), weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)
    assert model.evaluate(started.data.x, started.data.y, verbose=0) is not None

    scheduler.reconcile(started.id, broker_session)
    status = started.owner.project(started.id)
    assert (status.state, status.round, status.progress) == ("done", 1, 1.0)
    downloaded = tmp_path / "downloaded.h5"
    assert started.owner.download_model(started.id, downloaded).weights_version == "1"
    assert downloaded.read_bytes() == final.read_bytes()


def test_bad_results_are_rejected_and_recorded(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    server_blobs: BlobStore,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    make_user,
    api_server,
    amqp_url: str,
    subtests,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    grant, untouched, _ = claim_round(provider, amqp_url)
    good = random_delta(schema, 0)
    nan = random_delta(schema, 1)
    nan[0][0, 0] = np.nan
    wrong_shape = [np.zeros((64, 32), np.float32)] + good[1:]
    stranger = Provider(make_user(api_server.url, "stranger"))
    huge = b"\0" * (schema.nbytes + 128 * 1024)
    other_key = grant.result_key.replace(str(grant.claim_id), str(uuid.uuid4()))
    cases: dict[str, Callable[[], TrainResult]] = {
        "wrong_provider": lambda: stranger.result(grant, good),
        "schema_mismatch": lambda: provider.result(grant, good, schema_hash="0" * 64),
        "checksum_mismatch": lambda: provider.result(grant, good, sha256="0" * 64),
        "bad_delta (NaN)": lambda: provider.result(grant, nan),
        "bad_delta (shape)": lambda: provider.result(grant, wrong_shape),
        "bad_delta (not weights)": lambda: _raw_upload(provider, grant, b"DAIGWTS\x01garbage"),
        "bad_delta (other key)": lambda: provider.result(grant, good, blob_key=other_key),
        # e.g. written through an S3 presigned PUT, which cannot cap the size
        "bad_delta (too large)": lambda: _stored_directly(server_blobs, provider, grant, huge),
        "missing_blob": lambda: provider.result(untouched, None),
        "unknown_claim": lambda: provider.result(grant, good, claim_id=uuid.uuid4()),
        "unknown_task": lambda: provider.result(grant, good, task_id=uuid.uuid4()),
    }
    for case, make_message in cases.items():
        with subtests.test(case):
            message = make_message()
            verdict = aggregator.handle(message)
            reason = case.split(" ")[0]
            assert verdict is not None
            assert (verdict.status, verdict.reason) == ("rejected", reason)
            row = _results(sessions, started.id)[-1]
            assert (row.message_id, row.status, row.reason) == (
                message.message_id,
                "rejected",
                reason,
            )
            assert row.detail
    # Nothing of that was counted: the task is still open and the round still at 0.
    with sessions() as session:
        task = session.get(Task, grant.task_id)
        assert task is not None and task.state == "claimed"
    assert _project(sessions, started.id).current_round == 0
    rounds = started.owner.rounds(started.id)
    assert (rounds[0].accepted, rounds[0].rejected) == (0, len(cases))
    # A correct result on the same claim still gets in afterwards.
    verdict = aggregator.handle(provider.result(grant, good))
    assert verdict is not None and verdict.status == "accepted"


def test_redelivered_duplicate_and_stale_results_are_never_counted_twice(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    sessions: sessionmaker[Session],
    server_blobs: BlobStore,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=2))
    first, second, third = claim_round(provider, amqp_url)
    message = provider.result(first, random_delta(schema, 0))
    assert aggregator.handle(message).status == "accepted"
    assert aggregator.handle(message) is None  # the same message again: already handled
    assert len(_results(sessions, started.id)) == 1

    again = provider.result(first, random_delta(schema, 0))  # a new message for a done task
    verdict = aggregator.handle(again)
    assert verdict is not None and (verdict.status, verdict.reason) == ("rejected", "duplicate")

    for grant, seed in ((second, 1), (third, 2)):
        assert (
            aggregator.handle(provider.result(grant, random_delta(schema, seed))).status
            == "accepted"
        )
    assert _project(sessions, started.id).current_round == 1
    weights_v1 = server_blobs.get_bytes(keys.weights_key(started.id, 1))

    late = provider.result(third, random_delta(schema, 3))  # round 0 is over
    verdict = aggregator.handle(late)
    assert verdict is not None and (verdict.status, verdict.reason) == ("rejected", "stale_round")
    rows = _results(sessions, started.id)
    assert [(r.status, r.reason) for r in rows] == [
        ("accepted", None),
        ("rejected", "duplicate"),
        ("accepted", None),
        ("accepted", None),
        ("rejected", "stale_round"),
    ]
    assert _project(sessions, started.id).current_round == 1
    assert server_blobs.get_bytes(keys.weights_key(started.id, 1)) == weights_v1
    assert not server_blobs.exists(keys.weights_key(started.id, 2))


def test_failed_training_gives_the_task_back_until_the_project_fails(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    api_server,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    first, other, _ = claim_round(provider, amqp_url)
    task_id = first.task_id
    failures = api_server.settings.max_task_failures
    grant = first
    for attempt in range(1, failures + 1):
        message = provider.result(
            grant, None, status=TrainingStatus.FAILED, error=f"out of memory #{attempt}"
        )
        verdict = aggregator.handle(message)
        assert verdict is not None
        assert (verdict.status, verdict.reason) == ("failed", "training_failed")
        with sessions() as session:
            task = session.get(Task, task_id)
            assert task is not None and task.failures == attempt
        if attempt < failures:
            # Given out again by the same transaction: its message waits in the outbox.
            assert task.state == "queued"
            assert _project(sessions, started.id).state == "running"
            scheduler.reconcile(started.id, broker_session)  # published...
            [again] = drain_tasks(amqp_url)
            assert (again.task_id, again.attempt) == (task_id, attempt + 1)
            grant = provider.claim(task_id)  # ...and claimed again
    project = _project(sessions, started.id)
    assert project.state == "failed"
    assert project.error is not None
    assert f"failed {failures} times" in project.error
    assert f"out of memory #{failures}" in project.error
    status = started.owner.project(started.id)
    assert status.state == "failed" and status.error == project.error
    rows = _results(sessions, started.id)
    assert [(r.status, r.detail) for r in rows] == [
        ("failed", f"out of memory #{n}") for n in range(1, failures + 1)
    ]
    # A failed project takes no more results and gives out no more tasks.
    verdict = aggregator.handle(provider.result(other, random_delta(schema, 0)))
    assert (verdict.status, verdict.reason) == ("rejected", "project_not_running")
    with pytest.raises(ClientError) as error:
        provider.claim(other.task_id)
    assert error.value.status == 409
    scheduler.reconcile(started.id, broker_session)
    assert drain_tasks(amqp_url) == []


def test_straggler_is_given_out_again_and_the_first_result_wins(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    engine,
    schema: WeightSchema,
    make_user,
    api_server,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    fast, slow, _ = claim_round(provider, amqp_url)
    assert aggregator.handle(provider.result(fast, random_delta(schema, 0))).status == "accepted"
    scheduler.reconcile(started.id, broker_session)
    assert drain_tasks(amqp_url) == []  # nobody is late yet (the floor is 30 s)
    make_straggler(engine, scheduler, broker_session, started.id, slow.claim_id)
    [reissued] = drain_tasks(amqp_url)
    assert (reissued.task_id, reissued.attempt) == (slow.task_id, 2)
    helper = Provider(make_user(api_server.url, "helper"))
    rescue = helper.claim(reissued.task_id)  # the cap does not count the same task twice
    verdict = helper.result(rescue, random_delta(schema, 1))
    assert aggregator.handle(verdict).status == "accepted"
    with pytest.raises(ClientError) as error:
        provider.client.heartbeat(slow.claim_id)  # told to stop: someone else finished
    assert error.value.status == 409 and error.value.reason == "task_done"
    late = aggregator.handle(provider.result(slow, random_delta(schema, 2)))
    assert late is not None and (late.status, late.reason) == ("rejected", "duplicate")
    assert started.owner.project(started.id).accepted_tasks == 2


def test_results_over_the_broker_are_recorded_acked_and_the_next_round_published(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=2))
    drain(amqp_url, "daig.scheduler.events")
    messages = [
        provider.result(grant, random_delta(schema, seed))
        for seed, grant in enumerate(claim_round(provider, amqp_url))
    ]
    with provider_broker(provider.client) as broker:  # the provider's own broker user
        for message in [messages[0], messages[0], *messages[1:]]:  # one redelivered copy
            broker.publish(message)
    with consuming_results(amqp_url, aggregator):
        wait_until(lambda: _project(sessions, started.id).current_round == 1, 20, what="round 1")
        wait_until(lambda: results_ready(amqp_url) == 0, 10, what="all acked")
    assert [r.status for r in _results(sessions, started.id)] == ["accepted"] * 3
    # The transaction that closed round 0 opened round 1; its tasks went out at once, with no
    # event for the scheduler.
    assert {t.round for t in drain_tasks(amqp_url)} == {1}
    assert drain(amqp_url, "daig.scheduler.events") == []
    assert ready_count(amqp_url, "daig.dead") == 0
