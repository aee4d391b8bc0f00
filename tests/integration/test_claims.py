"""Task claims over real HTTP together with the scheduler's reconcile, on a real database, vhost
and blob store: round creation, the contributor cap, presigned grants, leases, release, expiry.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from daig.blobstore import open_blob_store, signing
from daig.broker import BrokerSession, run_consumer
from daig.client import ClientError, DaigClient
from daig.contract.http import Lease
from daig.contract.messages import EventKind, ProjectEvent, decode
from daig.db.models import Claim, Project, Task
from daig.hyperparams import Hyperparameters
from daig.planning import shard_rows
from daig.settings import Settings
from daig.topology import EVENTS
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights
from daig_scheduler.handlers import Scheduler
from tests.helpers.projects import Started, create_started_project
from tests.helpers.queues import drain, drain_tasks, ready_count
from tests.helpers.services import ApiServer
from tests.helpers.waiting import wait_until


@pytest.fixture
def provider(api_server, make_user) -> DaigClient:
    return make_user(api_server.url, "provider")


def _tasks(sessions: sessionmaker[Session], project_id: uuid.UUID) -> list[Task]:
    with sessions() as session:
        query = select(Task).where(Task.project_id == project_id).order_by(Task.slot)
        return list(session.scalars(query))


def _claim_row(sessions: sessionmaker[Session], claim_id: uuid.UUID) -> Claim:
    with sessions() as session:
        row = session.get(Claim, claim_id)
        assert row is not None
        return row


def _lapse_lease(engine, claim_id: uuid.UUID) -> None:
    """Let a claim's lease run out, as time would: on the claim and on its task's row."""
    past = "now() - interval '1 second'"
    with engine.begin() as connection:
        connection.execute(
            text(f"UPDATE claims SET lease_expires_at = {past} WHERE id = :id"), {"id": claim_id}
        )
        connection.execute(
            text(
                f"UPDATE tasks SET lease_expires_at = {past} "
                "WHERE id = (SELECT task_id FROM claims WHERE id = :id)"
            ),
            {"id": claim_id},
        )


def test_reconcile_opens_round_zero_and_publishes_up_to_the_cap(
    start_project: Callable[..., Started],
    sessions: sessionmaker[Session],
    scheduler: Scheduler,
    broker_session: BrokerSession,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=4, task_size=3, max_contributors=2))
    with sessions() as session:
        project = session.get(Project, started.id)
        assert project is not None and project.state == "running"
    tasks = _tasks(sessions, started.id)
    assert [(t.round_index, t.slot, t.shard) for t in tasks] == [(0, 0, 0), (0, 1, 1), (0, 2, 2)]
    assert [t.state for t in tasks] == ["queued", "queued", "pending"]
    # Reconciling again (a tick, a duplicate event) publishes nothing more and adds no tasks.
    scheduler.reconcile(started.id, broker_session)
    scheduler.tick(broker_session)
    assert ready_count(amqp_url, "daig.tasks") == 2
    assert len(_tasks(sessions, started.id)) == 3
    messages = drain_tasks(amqp_url)
    assert {m.task_id for m in messages} == {tasks[0].id, tasks[1].id}
    for message in messages:
        task = next(t for t in tasks if t.id == message.task_id)
        assert (message.project_id, message.round, message.shard, message.attempt) == (
            started.id,
            0,
            task.shard,
            1,
        )
    # The API announced the start on the scheduler's event queue.
    events = [
        decode(ProjectEvent, body, props.type)
        for props, body in drain(amqp_url, "daig.scheduler.events")
    ]
    assert [(e.project_id, e.kind) for e in events] == [(started.id, EventKind.PROJECT_STARTED)]


def test_claim_grant_urls_fetch_model_weights_and_exactly_the_shard(
    start_project: Callable[..., Started], provider: DaigClient, digits_files, amqp_url: str
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, epochs=2, batch_size=4))
    x, y = started.data.x, started.data.y
    expected_weights = read_weights(digits_files.model)
    shards_seen = []
    for message in drain_tasks(amqp_url):
        grant = provider.claim(message.task_id, "agent-1")
        assert (grant.task_id, grant.round, grant.shard) == (
            message.task_id,
            0,
            message.shard,
        )
        assert (grant.epochs, grant.batch_size, grant.validation_split) == (2, 4, 0.0)
        model = httpx.get(grant.model_url)
        assert model.status_code == 200
        assert model.content == digits_files.model.read_bytes()
        assert hashlib.sha256(model.content).hexdigest() == grant.model_sha256
        schema = WeightSchema.from_json(grant.weight_schema)
        assert schema.hash == grant.schema_hash
        weights = decode_weights(httpx.get(grant.weights_url).content, schema)
        for got, want in zip(weights, expected_weights, strict=True):
            np.testing.assert_array_equal(got, want)
        start, stop = shard_rows(message.shard, 10, 3)
        for remote, array in ((grant.data, x), (grant.labels, y)):
            assert remote.rows == stop - start
            assert remote.row_shape == list(array.shape[1:])
            part = httpx.get(
                remote.url,
                headers={"Range": f"bytes={remote.byte_start}-{remote.byte_end - 1}"},
            )
            assert part.status_code == 206
            rows = np.frombuffer(part.content, dtype=remote.dtype)
            np.testing.assert_array_equal(rows.reshape(array[start:stop].shape), array[start:stop])
        shards_seen.append((message.shard, stop - start))
    assert sorted(shards_seen) == [(0, 3), (1, 3), (2, 4)]


def test_a_claimed_task_cannot_be_claimed_again(
    start_project: Callable[..., Started], provider: DaigClient, make_user, api_server, amqp_url
) -> None:
    start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    provider.claim(task.task_id, "agent-1")
    for other in (provider, make_user(api_server.url, "rival")):
        with pytest.raises(ClientError) as error:
            other.claim(task.task_id, "agent-2")
        assert error.value.status == 409 and error.value.reason == "task_claimed"
    with pytest.raises(ClientError) as error:
        provider.claim(uuid.uuid4(), "agent-1")
    assert error.value.status == 404


def test_contributor_cap_is_enforced_on_claims(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions: sessionmaker[Session],
    make_user,
    api_server,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, max_contributors=2))
    first, second, third = _tasks(sessions, started.id)
    assert third.state == "pending"  # not published: the cap was reached
    grant = provider.claim(first.id, "a")
    make_user(api_server.url, "second").claim(second.id, "b")
    with pytest.raises(ClientError) as error:
        make_user(api_server.url, "third").claim(third.id, "c")
    assert error.value.status == 409 and error.value.reason == "contributor_cap"
    assert started.owner.project(started.id).active_contributors == 2
    provider.release(grant.claim_id)  # a slot frees up
    provider.claim(third.id, "a")


def test_heartbeat_extends_the_lease(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions: sessionmaker[Session],
    engine,
    make_user,
    api_server,
    amqp_url: str,
) -> None:
    start_project(Hyperparameters(total_tasks=3, task_size=3))
    grant = provider.claim(drain_tasks(amqp_url)[0].task_id, "agent-1")
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE claims SET lease_expires_at = now() + interval '2 seconds' WHERE id = :id"
            ),
            {"id": grant.claim_id},
        )
    lease = provider.heartbeat(grant.claim_id)
    assert lease == Lease(claim_id=grant.claim_id, lease_seconds=30.0)
    remaining = _claim_row(sessions, grant.claim_id).lease_expires_at - datetime.now(UTC)
    assert 25 < remaining.total_seconds() <= 30
    with pytest.raises(ClientError) as error:
        make_user(api_server.url, "intruder").heartbeat(grant.claim_id)
    assert error.value.status == 404


def test_release_makes_the_task_pending_and_the_scheduler_publishes_it_again(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions: sessionmaker[Session],
    scheduler: Scheduler,
    broker_session: BrokerSession,
    make_user,
    api_server,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    grant = provider.claim(task.task_id, "agent-1")
    drain(amqp_url, "daig.scheduler.events")
    provider.release(grant.claim_id)
    assert _claim_row(sessions, grant.claim_id).state == "released"
    states = {t.id: t.state for t in _tasks(sessions, started.id)}
    assert states[task.task_id] == "pending"
    [event] = [
        decode(ProjectEvent, body, props.type)
        for props, body in drain(amqp_url, "daig.scheduler.events")
    ]
    assert event.kind == EventKind.TASK_RELEASED and event.detail == {"task_id": str(task.task_id)}

    scheduler.reconcile(started.id, broker_session)
    [again] = drain_tasks(amqp_url)
    assert (again.task_id, again.attempt) == (task.task_id, 2)
    make_user(api_server.url, "next").claim(task.task_id, "agent-2")
    with pytest.raises(ClientError) as error:
        provider.heartbeat(grant.claim_id)  # the released claim is over
    assert error.value.status == 409 and error.value.reason == "claim_ended"


def test_expired_lease_gets_the_task_published_again(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions: sessionmaker[Session],
    scheduler: Scheduler,
    broker_session: BrokerSession,
    engine,
    make_user,
    api_server,
    amqp_url: str,
) -> None:
    start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    grant = provider.claim(task.task_id, "agent-1")
    scheduler.tick(broker_session)  # a live lease: nothing to do
    assert ready_count(amqp_url, "daig.tasks") == 0
    _lapse_lease(engine, grant.claim_id)
    scheduler.tick(broker_session)
    [again] = drain_tasks(amqp_url)
    assert (again.task_id, again.attempt) == (task.task_id, 2)
    assert _claim_row(sessions, grant.claim_id).state == "expired"
    with pytest.raises(ClientError) as error:
        provider.heartbeat(grant.claim_id)
    assert error.value.status == 409
    second = make_user(api_server.url, "next").claim(task.task_id, "agent-2")
    assert second.claim_id != grant.claim_id


def test_a_task_whose_lease_lapsed_can_be_claimed_before_the_scheduler_notices(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions: sessionmaker[Session],
    engine,
    make_user,
    api_server,
    amqp_url: str,
) -> None:
    # DESIGN: a claim succeeds for a task that is "unclaimed or expired", e.g. when the task
    # message is redelivered to another provider after the first one vanished.
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    first = provider.claim(task.task_id, "agent-1")
    _lapse_lease(engine, first.claim_id)
    second = make_user(api_server.url, "next").claim(task.task_id, "agent-2")
    assert second.claim_id != first.claim_id
    assert {t.id: t.state for t in _tasks(sessions, started.id)}[task.task_id] == "claimed"


def test_a_late_heartbeat_does_not_take_back_a_task_whose_lease_lapsed(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions: sessionmaker[Session],
    scheduler: Scheduler,
    broker_session: BrokerSession,
    engine,
    make_user,
    api_server,
    amqp_url: str,
) -> None:
    # Once a lease lapsed the task is free: its holder's late renewal must not make it held
    # again, or the next provider's claim is refused while the holder may be gone for good.
    start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    first = provider.claim(task.task_id, "agent-1")
    _lapse_lease(engine, first.claim_id)
    with pytest.raises(ClientError) as error:
        provider.heartbeat(first.claim_id)
    assert error.value.status == 409 and error.value.reason == "claim_ended"
    rival = make_user(api_server.url, "next")
    second = rival.claim(task.task_id, "agent-2")
    assert second.claim_id != first.claim_id
    scheduler.tick(broker_session)  # the lapsed claim expires; the new one holds the task
    assert _claim_row(sessions, first.claim_id).state == "expired"
    assert _claim_row(sessions, second.claim_id).state == "active"
    assert rival.heartbeat(second.claim_id).claim_id == second.claim_id


def test_scheduler_consuming_events_publishes_tasks_after_start(
    start_project: Callable[..., Started],
    scheduler: Scheduler,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    # The scheduler as it runs in production: consuming the event queue, ticking when idle.
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_consumer,
        args=(amqp_url, EVENTS.queue, scheduler.on_event, stop),
        kwargs={"idle": scheduler.tick, "idle_seconds": 0.2},
        daemon=True,
    )
    consumer.start()
    try:
        started = start_project(Hyperparameters(total_tasks=4, task_size=2), reconcile=False)
        wait_until(lambda: ready_count(amqp_url, "daig.tasks") == 2, 10, what="2 task messages")
        wait_until(lambda: ready_count(amqp_url, EVENTS.queue) == 0, 10, what="the event acked")
    finally:
        stop.set()
        consumer.join(10)
    assert [t.shard for t in _tasks(sessions, started.id)] == [0, 1]
    assert started.owner.project(started.id).state == "running"
    assert ready_count(amqp_url, "daig.tasks") == 2  # ticks publish nothing twice


def test_with_the_s3_store_grants_are_s3_urls_serving_the_shard(
    settings: Settings,
    s3_endpoint: str,
    make_user,
    digits_files,
    small_data,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    amqp_url: str,
    tmp_path: Path,
) -> None:
    s3_settings = settings.model_copy(
        update={
            "blob_url": f"s3://daig-api-{uuid.uuid4().hex[:8]}/deployment",
            "s3_endpoint_url": s3_endpoint,
            "s3_access_key": "test",
            "s3_secret_key": "test",
        }
    )
    with ApiServer(s3_settings) as server:
        owner, provider = make_user(server.url, "requestor"), make_user(server.url, "provider")
        params = Hyperparameters(total_tasks=3, task_size=3)
        project = create_started_project(owner, digits_files.model, small_data, params)
        scheduler.reconcile(project.id, broker_session)
        task = max(drain_tasks(amqp_url), key=lambda m: m.shard)  # shard 2: rows 6..9
        grant = provider.claim(task.task_id, "agent-s3")
        assert grant.data.url.startswith(s3_endpoint)
        assert "/deployment/projects/" in grant.data.url
        remote = grant.data
        part = httpx.get(
            remote.url,
            headers={"Range": f"bytes={remote.byte_start}-{remote.byte_end - 1}"},
        )
        assert part.status_code == 206
        rows = np.frombuffer(part.content, dtype=remote.dtype).reshape(4, 64)
        np.testing.assert_array_equal(rows, small_data.x[6:10])
        assert httpx.get(grant.model_url).content == digits_files.model.read_bytes()
        upload = httpx.put(grant.result_url, content=b"delta")
        assert upload.status_code == 200
        stored = open_blob_store(s3_settings).get_bytes(grant.result_key)
        assert stored == b"delta"
        # The local store's route has nothing to serve on an S3 deployment.
        local_url = signing.signed_url(server.url, s3_settings.secret_key, "GET", "x", 60)
        refused = httpx.get(local_url)
        assert refused.status_code == 404 and refused.json()["reason"] == "not_local"
        model = tmp_path / "v0.h5"
        assert owner.download_model(project.id, model).weights_version == "0"
        assert read_weights(model)[0].shape == (64, 64)
