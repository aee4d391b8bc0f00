"""Replication against the real API and aggregator: replicas made at claim time, settled by
agreement or majority, paid once each, cheats quarantined and reversed, Sybil groups kept apart.

Every account here is new, so every first task it claims is replicated (``daig.trust``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daig.broker import BrokerSession
from daig.client import ClientError, DaigClient
from daig.contract.http import ClaimGrant
from daig.credits import ledger
from daig.credits.units import to_units
from daig.db.models import (
    CreditEntry,
    CreditTransfer,
    ProviderTrust,
    Result,
    ResultStatus,
    Round,
    Task,
    TaskState,
)
from daig.dispatch import open_waiting_replicas
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig.topology import provider_broker_user
from daig.weights.schema import WeightSchema
from daig_aggregator.prepare import Incoming
from daig_scheduler.handlers import Scheduler
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, random_delta
from tests.helpers.stragglers import make_straggler
from tests.helpers.waiting import wait_until

PARAMS = Hyperparameters(total_tasks=3, task_size=3, passes=1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Replication on; every test account signs up from 127.0.0.1 and is its own group."""
    return settings.model_copy(update={"replication": True, "sybil_window_seconds": 0})


@pytest.fixture
def volunteer(api_server, make_user: Callable[..., DaigClient]) -> Callable[[], Provider]:
    return lambda: Provider(make_user(api_server.url, "volunteer"))


def _task_ids(amqp_url: str) -> list[uuid.UUID]:
    return [m.task_id for m in drain_tasks(amqp_url)]


def _published(amqp_url: str, task_id: uuid.UUID) -> bool:
    """Whether ``task_id``'s message reaches the queue (the API publishes after its commit)."""
    seen: list[uuid.UUID] = []

    def arrived() -> bool:
        seen.extend(_task_ids(amqp_url))
        return task_id in seen

    wait_until(arrived, 10, what=f"task {task_id} published")
    return True


def _replicas_of(sessions: sessionmaker[Session], task_id: uuid.UUID) -> list[Task]:
    with sessions() as session:
        return list(session.scalars(select(Task).where(Task.replica_of == task_id)))


def _statuses(sessions: sessionmaker[Session], project_id: uuid.UUID) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(
            select(Result.status, func.count())
            .where(Result.project_id == project_id)
            .group_by(Result.status)
        )
        return {status: int(count) for status, count in rows}


def _earned(sessions: sessionmaker[Session], provider: Provider) -> int:
    with sessions() as session:
        return ledger.balance_of(session, provider.id).earned


def _trust(sessions: sessionmaker[Session], provider: Provider) -> ProviderTrust | None:
    with sessions() as session:
        return session.get(ProviderTrust, provider.id)


def _first_and_replica(
    started: Started, amqp_url: str, sessions, first: Provider, second: Provider
) -> tuple[ClaimGrant, ClaimGrant]:
    """``first`` claims shard 0's task (which makes a replica), ``second`` its replica."""
    with sessions() as session:
        task_id = session.scalar(
            select(Task.id).where(
                Task.project_id == started.id, Task.shard == 0, Task.replica_of.is_(None)
            )
        )
    assert task_id is not None
    _task_ids(amqp_url)  # the round's messages: the tasks are claimed by id
    grant = first.claim(task_id)
    [replica] = _replicas_of(sessions, task_id)
    assert _published(amqp_url, replica.id), "the replica is published"
    return grant, second.claim(replica.id)


def _outvote(
    aggregator: DirectAggregator,
    sessions: sessionmaker[Session],
    honest: tuple[Provider, ClaimGrant],
    cheat: tuple[Provider, ClaimGrant],
    third: Provider,
    delta: list[np.ndarray],
) -> None:
    """Honest and cheat disagree on shard 0; ``third`` takes the tie-breaker and agrees with
    the honest result, so the cheat is outvoted and quarantined."""
    (honest_provider, grant_h), (cheat_provider, grant_c) = honest, cheat
    aggregator.handle(honest_provider.result(grant_h, delta))
    aggregator.handle(cheat_provider.result(grant_c, [np.zeros_like(v) for v in delta]))
    tie_breaker = next(
        r for r in _replicas_of(sessions, grant_h.task_id) if r.id != grant_c.task_id
    )
    aggregator.handle(third.result(third.claim(tie_breaker.id), delta))


def test_a_new_accounts_claim_makes_a_replica_no_grant_tells_apart(
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    start_project(PARAMS)
    a, b = volunteer(), volunteer()
    task_id = _task_ids(amqp_url)[0]
    grant_a = a.claim(task_id)
    [replica] = _replicas_of(sessions, task_id)
    assert (replica.shard, replica.round_index) == (grant_a.shard, grant_a.round)
    with pytest.raises(ClientError) as refused:
        a.claim(replica.id)
    assert refused.value.status == 409 and "your own account" in str(refused.value)
    grant_b = b.claim(replica.id)
    per_claim = {"claim_id", "task_id", "result_key", "result_url", "data", "labels"}
    assert grant_a.model_dump(exclude=per_claim) == grant_b.model_dump(exclude=per_claim)
    assert grant_a.model_fields_set == grant_b.model_fields_set


def test_agreeing_replicas_are_accepted_once_and_paid_once_each(
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    aggregator: DirectAggregator,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(PARAMS)
    a, b = volunteer(), volunteer()
    grant_a, grant_b = _first_and_replica(started, amqp_url, sessions, a, b)
    delta = random_delta(schema, seed=1)
    first = aggregator.handle(a.result(grant_a, delta))
    assert first is not None and first.status == ResultStatus.HELD
    assert _statuses(sessions, started.id) == {ResultStatus.HELD: 1}
    aggregator.handle(b.result(grant_b, delta))
    assert _statuses(sessions, started.id) == {
        ResultStatus.ACCEPTED: 1,
        ResultStatus.AGREED: 1,
    }
    with sessions() as session:
        round_0 = session.get(Round, (started.id, 0))
        assert round_0 is not None and round_0.accepted == 1
        states = {
            t.state
            for t in session.scalars(
                select(Task).where(Task.shard == grant_a.shard, Task.project_id == started.id)
            )
        }
        assert states == {TaskState.DONE}
    assert _earned(sessions, a) > 0 and _earned(sessions, a) == _earned(sessions, b)
    for provider in (a, b):
        record = _trust(sessions, provider)
        assert record is not None and record.verified_valid == 1
    # The same result again, under a new message id: the task is decided, nothing more paid.
    again = aggregator.handle(b.result(grant_b, delta))
    assert again is not None and again.reason == "duplicate"
    assert _earned(sessions, b) == _earned(sessions, a)


def test_a_disagreement_is_resolved_by_a_third_and_the_cheat_quarantined(
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(PARAMS)
    honest, cheat, third = volunteer(), volunteer(), volunteer()
    grant_h, grant_c = _first_and_replica(started, amqp_url, sessions, honest, cheat)
    delta = random_delta(schema, seed=2)
    aggregator.handle(honest.result(grant_h, delta))
    aggregator.handle(cheat.result(grant_c, [np.zeros_like(v) for v in delta]))
    assert _statuses(sessions, started.id) == {ResultStatus.HELD: 2}
    replicas = _replicas_of(sessions, grant_h.task_id)
    assert len(replicas) == 2, "a disagreement makes one more replica"
    tie_breaker = next(r for r in replicas if r.id != grant_c.task_id)
    scheduler.publish_outbox(broker_session)  # its message waits in the outbox
    assert _published(amqp_url, tie_breaker.id)
    paid_before = _earned(sessions, cheat)
    assert paid_before > 0, "paid on arrival, like any result"
    aggregator.handle(third.result(third.claim(tie_breaker.id), delta))
    assert _statuses(sessions, started.id) == {
        ResultStatus.ACCEPTED: 1,
        ResultStatus.AGREED: 1,
        ResultStatus.DISAGREED: 1,
    }
    with sessions() as session:
        accepted = session.scalar(
            select(Result).where(
                Result.project_id == started.id, Result.status == ResultStatus.ACCEPTED
            )
        )
        assert accepted is not None and accepted.provider_id == honest.id
    record = _trust(sessions, cheat)
    assert record is not None and record.verified_invalid == 1
    assert record.quarantined_at is not None and record.quarantine_task == grant_c.task_id
    assert _earned(sessions, cheat) == 0, "its payment for the failed task was reversed"
    assert _earned(sessions, honest) == _earned(sessions, third) == paid_before
    with sessions() as session:
        transfers = session.execute(
            select(CreditTransfer.id, func.sum(CreditEntry.amount))
            .join(CreditEntry, CreditEntry.transfer_id == CreditTransfer.id)
            .where(CreditTransfer.project_id == started.id)
            .group_by(CreditTransfer.id)
        ).all()
        assert transfers and all(total == 0 for _, total in transfers), "every transfer balances"
        kinds = session.scalars(
            select(CreditTransfer.kind).where(CreditTransfer.project_id == started.id)
        ).all()
        assert sorted(kinds) == [ledger.REVERSAL, ledger.WORK, ledger.WORK, ledger.WORK]
    # Quarantined: refused work with a clear 403, and a later result of it is rejected.
    with sessions() as session:
        other_task = session.scalar(
            select(Task.id).where(Task.project_id == started.id, Task.shard == 1)
        )
    assert other_task is not None
    with pytest.raises(ClientError) as refused:
        cheat.claim(other_task)
    assert refused.value.status == 403 and "quarantined" in str(refused.value)


def test_accounts_from_one_address_never_verify_each_other(
    api_server,
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    api_server.settings.sybil_window_seconds = 3600.0  # the running API reads it per sign-up
    start_project(PARAMS)
    a, sybil = volunteer(), volunteer()  # both from 127.0.0.1, within the hour
    task_id = _task_ids(amqp_url)[0]
    a.claim(task_id)
    [replica] = _replicas_of(sessions, task_id)
    with pytest.raises(ClientError) as refused:
        sybil.claim(replica.id)
    assert refused.value.status == 409 and "your address" in str(refused.value)


def test_a_replica_nobody_else_takes_opens_to_anyone_and_settles_unverified(
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    aggregator: DirectAggregator,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(PARAMS)
    alone = volunteer()
    task_id = _task_ids(amqp_url)[0]
    grant = alone.claim(task_id)
    [replica] = _replicas_of(sessions, task_id)
    with sessions.begin() as session:
        assert open_waiting_replicas(session, wait_seconds=0.0) == 1
    again = alone.claim(replica.id)
    delta = random_delta(schema, seed=3)
    aggregator.handle(alone.result(grant, delta))
    aggregator.handle(alone.result(again, delta))
    assert _statuses(sessions, started.id) == {
        ResultStatus.ACCEPTED: 1,
        ResultStatus.AGREED: 1,
    }
    record = _trust(sessions, alone)
    assert record is None or record.verified_valid == 0, "one account verifies nothing"


def test_the_cost_estimate_counts_replicas(start_project: Callable[..., Started]) -> None:
    started = start_project(PARAMS)
    cost = started.owner.project_cost(started.id)
    assert cost.estimate is not None and cost.replicas > 0
    base = to_units(cost.estimate) - to_units(cost.replicas)  # exact work units
    assert to_units(cost.replicas) == -(-base * 1 // 10), "verify_fraction 0.1 of the worth"


def test_a_quarantined_providers_waiting_results_are_dropped_at_once(
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(PARAMS)
    honest, cheat, third = volunteer(), volunteer(), volunteer()
    grant_h, grant_c = _first_and_replica(started, amqp_url, sessions, honest, cheat)
    with sessions() as session:
        shard_1 = session.scalar(
            select(Task.id).where(Task.project_id == started.id, Task.shard == 1)
        )
    assert shard_1 is not None
    delta = random_delta(schema, seed=4)
    zeros = [np.zeros_like(v) for v in delta]
    aggregator.handle(cheat.result(cheat.claim(shard_1), zeros))  # waits for its replica
    _outvote(aggregator, sessions, (honest, grant_h), (cheat, grant_c), third, delta)
    with sessions() as session:
        waiting = session.execute(
            select(Result.status, Result.reason).where(Result.task_id == shard_1)
        ).one()
    assert tuple(waiting) == (ResultStatus.REJECTED, "quarantined")
    assert len(_replicas_of(sessions, shard_1)) == 2, "its replica, and one in its place"
    assert _earned(sessions, cheat) == 0, "both its payments were reversed"


def test_a_waiting_result_in_another_project_is_dropped_when_its_shard_settles(
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    honest, cheat, third = volunteer(), volunteer(), volunteer()
    elsewhere = start_project(PARAMS)
    _task_ids(amqp_url)  # elsewhere's messages: claimed by id below
    with sessions() as session:
        other_first = session.scalar(
            select(Task.id).where(Task.project_id == elsewhere.id, Task.shard == 0)
        )
    assert other_first is not None
    delta = random_delta(schema, seed=5)
    zeros = [np.zeros_like(v) for v in delta]
    aggregator.handle(cheat.result(cheat.claim(other_first), zeros))  # waits, in "elsewhere"
    [other_replica] = _replicas_of(sessions, other_first)

    started = start_project(PARAMS)
    grant_h, grant_c = _first_and_replica(started, amqp_url, sessions, honest, cheat)
    _outvote(aggregator, sessions, (honest, grant_h), (cheat, grant_c), third, delta)
    record = _trust(sessions, cheat)
    assert record is not None and record.quarantined_at is not None

    # Its result in "elsewhere" waits until that shard's replica comes in: then it is dropped,
    # not outvoted (its record keeps one invalid result), and replaced.
    aggregator.handle(honest.result(honest.claim(other_replica.id), delta))
    with sessions() as session:
        dropped = session.execute(
            select(Result.status, Result.reason).where(Result.task_id == other_first)
        ).one()
    assert tuple(dropped) == (ResultStatus.REJECTED, "quarantined")
    record = _trust(sessions, cheat)
    assert record is not None and record.verified_invalid == 1
    assert len(_replicas_of(sessions, other_first)) == 2


def test_a_stragglers_second_copy_in_the_same_batch_is_a_duplicate(
    start_project: Callable[..., Started],
    volunteer: Callable[[], Provider],
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    sessions: sessionmaker[Session],
    engine,
    schema: WeightSchema,
    settings: Settings,
    amqp_url: str,
) -> None:
    """A replicated task given out again as a straggler has two live claims; when both results
    arrive in one batch, the first is held and the second is a duplicate (seen in a chaos run:
    the batch failed on an illegal verifying -> verifying move and was recorded one by one)."""
    started = start_project(PARAMS)
    a, b, c = volunteer(), volunteer(), volunteer()
    shard_0, shard_1 = _task_ids(amqp_url)[:2]
    grant_a, grant_b = a.claim(shard_0), b.claim(shard_1)
    delta = random_delta(schema, seed=4)
    held = aggregator.handle(b.result(grant_b, delta))  # a finished claim: deadlines start
    assert held is not None and held.status == ResultStatus.HELD
    make_straggler(engine, scheduler, broker_session, started.id, grant_a.claim_id)
    assert grant_a.task_id in _task_ids(amqp_url), "the straggler's task is given out again"
    grant_c = c.claim(grant_a.task_id)
    both = [
        Incoming(p.result(g, delta), provider_broker_user(p.id, settings.amqp_vhost))
        for p, g in ((a, grant_a), (c, grant_c))
    ]
    first, second = aggregator.handle_batch(both)
    assert first is not None and first.status == ResultStatus.HELD  # its replica is still out
    assert second is not None and (second.status, second.reason) == ("rejected", "duplicate")
    assert _statuses(sessions, started.id) == {ResultStatus.HELD: 2, ResultStatus.REJECTED: 1}
    assert _earned(sessions, c) == 0 and _earned(sessions, a) > 0
