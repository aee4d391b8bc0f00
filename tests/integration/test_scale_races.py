"""The races a server under load meets: concurrent claims, the cap, a round closing while the
scheduler reconciles, a batch whose transaction fails. Real API, Postgres and RabbitMQ."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bench.provider_broker import provider_broker
from daig.client import ClientError, DaigClient
from daig.contract.http import ClaimGrant
from daig.db.models import Claim, Result, Task
from daig.hyperparams import Hyperparameters
from daig.weights.schema import WeightSchema
from daig_aggregator.handlers import Aggregator
from daig_aggregator.recording import Recorder
from daig_scheduler.handlers import Scheduler
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.queues import consuming_results, drain_tasks, ready_count, results_ready
from tests.helpers.results import trained_result
from tests.helpers.waiting import wait_until


def _claim_outcomes(
    clients: list[DaigClient], task_ids: list[uuid.UUID]
) -> list[ClaimGrant | ClientError]:
    """Every client claims its task at the same moment (a barrier); grants or refusals."""
    barrier = threading.Barrier(len(clients))

    def claim(pair: tuple[DaigClient, uuid.UUID]) -> ClaimGrant | ClientError:
        client, task_id = pair
        barrier.wait(30)
        try:
            return client.claim(task_id, f"agent-{uuid.uuid4().hex[:6]}")
        except ClientError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(claim, zip(clients, task_ids, strict=True)))


def test_32_concurrent_claims_of_one_task_make_exactly_one_grant(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    task_id = drain_tasks(amqp_url)[0].task_id
    clients = [make_user(api_server.url, f"rival{n}") for n in range(32)]
    outcomes = _claim_outcomes(clients, [task_id] * 32)
    grants = [o for o in outcomes if isinstance(o, ClaimGrant)]
    refusals = Counter(o.reason for o in outcomes if isinstance(o, ClientError))
    assert len(grants) == 1
    assert refusals == {"task_claimed": 31}
    with sessions() as session:
        claims = session.scalars(select(Claim).where(Claim.task_id == task_id)).all()
        assert [c.id for c in claims] == [grants[0].claim_id]
        task = session.get(Task, task_id)
        assert task is not None and task.state == "claimed"
    assert started.owner.project(started.id).active_contributors == 1


def test_the_contributor_cap_holds_under_concurrent_claims(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    sessions: sessionmaker[Session],
) -> None:
    started = start_project(
        Hyperparameters(total_tasks=8, task_size=8, max_contributors=3), reconcile=True
    )
    with sessions() as session:
        task_ids = list(
            session.scalars(
                select(Task.id).where(Task.project_id == started.id).order_by(Task.slot)
            )
        )
    assert len(task_ids) == 8
    clients = [make_user(api_server.url, f"crowd{n}") for n in range(8)]
    # Every task at once, published or not: a claim names its task, the cap still binds.
    outcomes = _claim_outcomes(clients, task_ids)
    grants = [o for o in outcomes if isinstance(o, ClaimGrant)]
    refusals = Counter(o.reason for o in outcomes if isinstance(o, ClientError))
    assert len(grants) == 3
    assert refusals == {"contributor_cap": 5}
    with sessions() as session:
        active = session.scalars(
            select(Claim).where(Claim.project_id == started.id, Claim.state == "active")
        ).all()
    assert len(active) == 3


def _delta(schema: WeightSchema, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(t.shape) * 0.01).astype(t.dtype) for t in schema.tensors]


def test_a_round_closing_while_the_scheduler_reconciles_opens_the_next_round_once(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: Any,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=2))
    provider = make_user(api_server.url, "provider")
    provider_id = int(provider.me().id)
    grants = [provider.claim(m.task_id, "agent") for m in drain_tasks(amqp_url)]
    schema = WeightSchema.from_json(grants[0].weight_schema)
    messages = [trained_result(g, provider_id, _delta(schema, n)) for n, g in enumerate(grants)]
    for message in messages[:2]:
        assert aggregator.handle(message).status == "accepted"
    stop = threading.Event()

    def reconcile_hard() -> None:
        while not stop.is_set():
            scheduler.reconcile(started.id, broker_session)

    reconciler = threading.Thread(target=reconcile_hard)
    reconciler.start()
    try:
        verdict = aggregator.handle(messages[2])  # closes round 0, opens round 1
    finally:
        stop.set()
        reconciler.join(30)
    assert verdict is not None and verdict.round_closed
    scheduler.reconcile(started.id, broker_session)
    with sessions() as session:
        round_one = session.scalars(
            select(Task).where(Task.project_id == started.id, Task.round_index == 1)
        ).all()
    assert sorted(t.slot for t in round_one) == [0, 1, 2]
    published = [m for m in drain_tasks(amqp_url) if m.round == 1]
    assert sorted(m.shard for m in published) == [0, 1, 2]
    assert {m.attempt for m in published} == {1}


def _round_of_results(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    amqp_url: str,
) -> tuple[Started, DaigClient, list[Any]]:
    """A started project of K=3 (two rounds), a provider, and its three round-0 results."""
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=2))
    provider = make_user(api_server.url, "provider")
    provider_id = int(provider.me().id)
    grants = [provider.claim(m.task_id, "agent") for m in drain_tasks(amqp_url)]
    schema = WeightSchema.from_json(grants[0].weight_schema)
    messages = [trained_result(g, provider_id, _delta(schema, n)) for n, g in enumerate(grants)]
    return started, provider, messages


def _recorded(sessions: sessionmaker[Session], project_id: uuid.UUID, count: int) -> Any:
    def found() -> list[Result] | None:
        with sessions() as session:
            rows = list(session.scalars(select(Result).where(Result.project_id == project_id)))
        return rows if len(rows) >= count else None

    return found


class _CommitFailsOnce(Recorder):
    """Records, then the connection fails before the commit: the transaction rolls back."""

    failures = 0

    def record(self, session: Session, batch: list[Any]) -> Any:
        outcome = super().record(session, batch)
        if _CommitFailsOnce.failures == 0:
            _CommitFailsOnce.failures += 1
            raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))
        return outcome


def test_a_batch_whose_commit_fails_is_retried_and_recorded_once(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    server_blobs: Any,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    started, provider, messages = _round_of_results(start_project, make_user, api_server, amqp_url)
    aggregator = Aggregator(sessions, server_blobs, api_server.settings)
    _CommitFailsOnce.failures = 0
    aggregator._recorder.__class__ = _CommitFailsOnce  # the fault, in the real recorder
    with provider_broker(provider) as broker:
        for message in messages:
            broker.publish(message)
    with consuming_results(amqp_url, aggregator):
        rows = wait_until(_recorded(sessions, started.id, 3), 30, what="three results")
        wait_until(lambda: results_ready(amqp_url) == 0, 30, what="every result acked")
    assert _CommitFailsOnce.failures == 1
    assert sorted(r.message_id for r in rows) == sorted(m.message_id for m in messages)
    assert {r.status for r in rows} == {"accepted"}
    assert started.owner.project(started.id).round == 1  # the round closed once
    assert started.owner.project_cost(started.id).paid_tasks == 3


class _AlwaysFails(Recorder):
    def record(self, session: Session, batch: list[Any]) -> Any:
        super().record(session, batch)
        raise RuntimeError("this aggregator cannot commit")


def test_results_an_aggregator_failed_to_record_are_redelivered_and_recorded_once(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    server_blobs: Any,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    started, provider, messages = _round_of_results(start_project, make_user, api_server, amqp_url)
    broken = Aggregator(sessions, server_blobs, api_server.settings, name="broken")
    broken._recorder.__class__ = _AlwaysFails
    with provider_broker(provider) as broker:
        for message in messages:
            broker.publish(message)
    with consuming_results(amqp_url, broken):
        time.sleep(3)  # it takes them, fails, gives them back (and takes them again)
        assert _recorded(sessions, started.id, 1)() is None
    healthy = Aggregator(sessions, server_blobs, api_server.settings, name="healthy")
    with consuming_results(amqp_url, healthy):
        rows = wait_until(_recorded(sessions, started.id, 3), 30, what="three results")
        wait_until(lambda: results_ready(amqp_url) == 0, 30, what="every result acked")
    assert sorted(r.message_id for r in rows) == sorted(m.message_id for m in messages)
    assert {(r.status, r.recorded_by) for r in rows} == {("accepted", "healthy")}
    assert ready_count(amqp_url, "daig.dead") == 0
    assert started.owner.project_cost(started.id).paid_tasks == 3


class _StallsAfterLosingTheBroker(Recorder):
    """The first batch: the broker connection dies (the broker hands the partition to the next
    aggregator), and this one is still inside its transaction for a while before committing."""

    connection: Any = None
    stalled = False
    woke_at = 0.0  # after this, its transaction commits

    def record(self, session: Session, batch: list[Any]) -> Any:
        outcome = super().record(session, batch)
        if not _StallsAfterLosingTheBroker.stalled:
            _StallsAfterLosingTheBroker.stalled = True
            self.connection.close()
            time.sleep(3)
            _StallsAfterLosingTheBroker.woke_at = time.monotonic()
        return outcome


class _Timed(Aggregator):
    """Notes when each of its batches committed, and when it fenced its partitions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.committed: list[float] = []
        self.fenced: list[float] = []  # when its fencing statement returned
        fence = self.ownership.fence

        def timed_fence(session: Session, partitions: Any) -> None:
            fence(session, partitions)
            self.fenced.append(time.monotonic())

        self.ownership.fence = timed_fence  # type: ignore[method-assign]

    def handle_batch(self, items: Any) -> Any:
        verdicts = super().handle_batch(items)
        self.committed.append(time.monotonic())
        return verdicts


def test_an_aggregator_that_lost_its_partition_cannot_record_beside_the_new_owner(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    server_blobs: Any,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    started, provider, messages = _round_of_results(start_project, make_user, api_server, amqp_url)
    first = _Timed(sessions, server_blobs, api_server.settings, name="first")
    second = _Timed(sessions, server_blobs, api_server.settings, name="second")
    _StallsAfterLosingTheBroker.stalled = False
    first._recorder.__class__ = _StallsAfterLosingTheBroker

    def keep_connection(session: Any) -> None:
        _StallsAfterLosingTheBroker.connection = session.connection

    with consuming_results(amqp_url, first, on_connect=keep_connection):
        time.sleep(1.0)  # the first one subscribed first: the broker makes it the active one
        with consuming_results(amqp_url, second):
            with provider_broker(provider) as broker:
                for message in messages:
                    broker.publish(message)
            rows = wait_until(_recorded(sessions, started.id, 3), 30, what="three results")
            wait_until(lambda: results_ready(amqp_url) == 0, 30, what="every result acked")
            wait_until(lambda: second.committed, 30, what="the second's batch")
    partition = first.partitions.of(started.id)
    assert sorted(r.message_id for r in rows) == sorted(m.message_id for m in messages)
    assert {r.status for r in rows} == {"accepted"}  # each recorded once
    assert "first" in {r.recorded_by for r in rows}  # its stalled batch committed
    # The second received what the first held (the broker gave it back when the first's
    # connection died) and took the partition over -- but only once the first had committed.
    assert second.ownership.epochs[partition] == first.ownership.epochs[partition] + 1
    assert min(second.fenced) >= _StallsAfterLosingTheBroker.woke_at > 0
    with sessions() as session:
        owner = session.execute(
            text("SELECT owner FROM aggregator_partitions WHERE partition = :p"), {"p": partition}
        ).scalar()
    assert owner == "second"
    assert started.owner.project_cost(started.id).paid_tasks == 3
