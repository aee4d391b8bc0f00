"""The state machine's set-wise writes on a real database: a task goes back to pending only when
no live claim holds it, whoever ends a claim (the provider, the lease, a failed try)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from daig import states
from daig.client import DaigClient
from daig.db.models import Claim, Task
from daig.hyperparams import Hyperparameters
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks


@pytest.fixture
def provider(api_server, make_user) -> DaigClient:
    return make_user(api_server.url, "provider")


def _rows(sessions: sessionmaker[Session], task_id: uuid.UUID, *claim_ids: uuid.UUID) -> list:
    with sessions() as session:
        task = session.get(Task, task_id)
        claims = [session.get(Claim, claim_id) for claim_id in claim_ids]
        assert task is not None and None not in claims
        return [task, *claims]


def _two_claims_on_one_task(
    start_project: Callable[..., Started],
    provider: DaigClient,
    rival: DaigClient,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> tuple[Started, uuid.UUID, str, str]:
    """A straggler's task given out again and claimed by a second provider."""
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    task_id = drain_tasks(amqp_url)[0].task_id
    first = provider.claim(task_id, "agent-1").claim_id
    with sessions.begin() as session:
        states.reissue(session, task_id)
    task, _ = _rows(sessions, task_id, first)
    assert task.state == "pending" and task.lease_expires_at is not None
    second = rival.claim(task_id, "agent-2").claim_id
    return started, task_id, first, second


def test_a_released_claim_leaves_its_task_to_another_live_claim(
    start_project: Callable[..., Started],
    provider: DaigClient,
    make_user,
    api_server,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    rival = make_user(api_server.url, "rival")
    _, task_id, first, second = _two_claims_on_one_task(
        start_project, provider, rival, sessions, amqp_url
    )
    provider.release(first)
    task, released, live = _rows(sessions, task_id, first, second)
    assert (task.state, released.state, live.state) == ("claimed", "released", "active")
    assert task.lease_expires_at == live.lease_expires_at
    rival.release(second)
    task, _ = _rows(sessions, task_id, second)
    assert (task.state, task.lease_expires_at) == ("pending", None)


def test_an_expired_claim_leaves_its_task_to_another_live_claim(
    start_project: Callable[..., Started],
    provider: DaigClient,
    make_user,
    api_server,
    sessions: sessionmaker[Session],
    engine,
    amqp_url: str,
) -> None:
    rival = make_user(api_server.url, "rival")
    started, task_id, first, second = _two_claims_on_one_task(
        start_project, provider, rival, sessions, amqp_url
    )
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE claims SET lease_expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": first},
        )
    with sessions.begin() as session:
        expired = states.expire_lapsed(session, now=datetime.now(UTC), project_id=started.id)
    assert expired == [(started.id, task_id)]
    task, lapsed, live = _rows(sessions, task_id, first, second)
    assert (task.state, lapsed.state, live.state) == ("claimed", "expired", "active")
    # The late result of the expired claim is given back (a failed try): still held.
    with sessions.begin() as session:
        after = states.give_back(session, claim_id=first, task_id=task_id, now=datetime.now(UTC))
    assert after == "claimed"
    task, given_back = _rows(sessions, task_id, first)
    assert (task.state, given_back.state) == ("claimed", "released")


def test_the_table_refuses_before_anything_is_written(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    start_project(Hyperparameters(total_tasks=3, task_size=3))
    task_id = drain_tasks(amqp_url)[0].task_id
    claim_id = provider.claim(task_id, "agent-1").claim_id
    provider.release(claim_id)
    with sessions.begin() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        with pytest.raises(states.IllegalTransition):
            states.release(session, claim, now=datetime.now(UTC))
    # A dead message of a task that is not queued changes nothing.
    with sessions.begin() as session:
        states.drop_message(session, task_id)
    task, claim = _rows(sessions, task_id, claim_id)
    assert (task.state, claim.state) == ("pending", "released")
