"""Requestor control (pause, resume, cancel) and dead-letter recording, on real services."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable

import pika
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daig.broker import Delivery
from daig.client import ClientError, DaigClient
from daig.contract.messages import TrainTask
from daig.db.models import Claim, DeadLetter, Project, Task
from daig.hyperparams import Hyperparameters
from daig_scheduler.deadletters import MAX_DEAD_TASK_MESSAGES, DeadLetterRecorder
from tests.helpers.accounts import PASSWORD
from tests.helpers.projects import Started
from tests.helpers.queues import drain, drain_tasks


@pytest.fixture
def provider(api_server, make_user) -> DaigClient:
    return make_user(api_server.url, "provider")


def _states(
    sessions: sessionmaker[Session], project_id: uuid.UUID
) -> tuple[str, list[str], list[str]]:
    with sessions() as session:
        project = session.get(Project, project_id)
        tasks = session.scalars(select(Task.state).where(Task.project_id == project_id)).all()
        claims = session.scalars(select(Claim.state).where(Claim.project_id == project_id)).all()
        assert project is not None
        return project.state, sorted(tasks), sorted(claims)


def test_pause_stops_running_tasks_and_resume_continues_the_same_round(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions,
    scheduler,
    broker_session,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    first, second, _ = drain_tasks(amqp_url)
    grant = provider.claim(first.task_id, "agent-1")

    paused = started.owner.pause(started.id)
    assert paused.state == "paused"
    state, tasks, claims = _states(sessions, started.id)
    assert (state, tasks, claims) == ("paused", ["pending"] * 3, ["released"])
    with pytest.raises(ClientError) as error:
        provider.heartbeat(grant.claim_id)  # the provider is told to stop
    assert error.value.status == 409
    with pytest.raises(ClientError) as error:
        provider.claim(second.task_id, "agent-1")  # queued messages are refused while paused
    assert error.value.reason == "project_not_running"
    scheduler.reconcile(started.id, broker_session)
    assert drain_tasks(amqp_url) == [], "a paused project publishes nothing"

    resumed = started.owner.resume(started.id)
    assert (resumed.state, resumed.round) == ("running", 0)
    scheduler.reconcile(started.id, broker_session)
    again = drain_tasks(amqp_url)
    assert sorted(t.task_id for t in again) == sorted(
        t for t in [first.task_id, second.task_id, _.task_id]
    )
    assert all(t.attempt == 2 for t in again)
    provider.claim(first.task_id, "agent-1")


def test_cancel_releases_everything_and_keeps_the_model(
    start_project: Callable[..., Started],
    provider: DaigClient,
    sessions,
    amqp_url: str,
    tmp_path,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    provider.claim(task.task_id, "agent-1")
    cancelled = started.owner.cancel(started.id)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    assert _states(sessions, started.id)[2] == ["released"]
    started.owner.download_model(started.id, tmp_path / "model.h5")
    assert (tmp_path / "model.h5").stat().st_size > 0
    with pytest.raises(ClientError) as error:
        started.owner.resume(started.id)
    assert error.value.status == 409
    with pytest.raises(ClientError) as error:
        started.owner.cancel(started.id)
    assert "already cancelled" in str(error.value)


def test_pause_requires_a_running_project(make_user, api_server) -> None:
    owner = make_user(api_server.url, "requestor")
    project = owner.create_project("idle", Hyperparameters())
    with pytest.raises(ClientError) as error:
        owner.pause(project.id)
    assert error.value.status == 409 and "created" in str(error.value)


def _dead(
    body: bytes, kind: str | None, reason: str = "delivery_limit", queue: str = "daig.tasks"
) -> Delivery:
    return Delivery(
        body=body,
        message_type=kind,
        redelivered=False,
        delivery_count=0,
        message_id=str(uuid.uuid4()),
        headers={"x-first-death-reason": reason, "x-first-death-queue": queue},
    )


def test_dead_task_messages_give_the_task_out_again_then_fail_the_project(
    start_project: Callable[..., Started],
    sessions,
    amqp_url: str,
    broker_session,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    recorder = DeadLetterRecorder(sessions)
    message = task.model_dump_json().encode()
    recorder.on_dead(_dead(message, TrainTask.type_name), broker_session)
    with sessions() as session:
        assert session.get(Task, task.task_id).state == "pending"
        row = session.scalars(select(DeadLetter)).one()
        assert (row.queue, row.reason, row.task_id) == (
            "daig.tasks",
            "delivery_limit",
            task.task_id,
        )
    for _ in range(MAX_DEAD_TASK_MESSAGES - 1):
        recorder.on_dead(_dead(message, TrainTask.type_name), broker_session)
    project = started.owner.project(started.id)
    assert project.state == "failed"
    assert "keeps failing on providers" in project.error


def test_garbage_dead_letters_are_recorded_with_the_brokers_reason(
    settings,
    sessions,
    amqp_url: str,
    broker_session,
) -> None:
    """A message a consumer rejects reaches the dead-letter queue with the reason 'rejected'."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.basic_publish(
        "daig.results", "result.0", b"not json", pika.BasicProperties(type="daig.TrainResult")
    )
    # Partition queues have a single active consumer: no basic.get, so consume one.
    method, _, _ = next(channel.consume("daig.results.0", inactivity_timeout=10))
    assert method is not None
    channel.basic_reject(method.delivery_tag, requeue=False)
    channel.cancel()
    connection.close()
    [(props, body)] = _wait_dead(amqp_url)
    recorder = DeadLetterRecorder(sessions)
    recorder.on_dead(
        Delivery(
            body=body,
            message_type=props.type,
            redelivered=False,
            delivery_count=0,
            headers=dict(props.headers or {}),
        ),
        broker_session,
    )
    with sessions() as session:
        row = session.scalars(select(DeadLetter)).one()
    assert (row.queue, row.reason, row.body) == ("daig.results.0", "rejected", "not json")


def _wait_dead(amqp_url: str) -> list:
    from tests.helpers.waiting import wait_until

    return wait_until(lambda: drain(amqp_url, "daig.dead"), 10, what="the dead letter")


def test_health_command_reports_database_broker_and_queues(api_server) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daig_cli", "health", "--server", api_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "database  ok" in result.stderr and "broker    ok" in result.stderr
    assert "daig.tasks" in result.stderr


def test_health_command_fails_when_the_server_is_down() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daig_cli", "health", "--server", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot reach the DAIG server" in result.stderr


def test_cli_pause_resume_cancel(start_project: Callable[..., Started], tmp_path) -> None:
    """The CLI commands drive the same endpoints, with the login remembered between them."""
    import os

    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    server = started.owner.server
    username = started.owner.me().username
    env = os.environ | {"XDG_CONFIG_HOME": str(tmp_path / "config"), "DAIG_PASSWORD": PASSWORD}

    def daig(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daig_cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = daig(
        "project",
        "pause",
        str(started.id),
        "--server",
        server,
        "--user",
        username,
    )
    assert first.returncode == 0, first.stderr
    assert "state: paused" in first.stderr
    resumed = daig("project", "resume", str(started.id))  # the session was remembered
    assert resumed.returncode == 0 and "state: running" in resumed.stderr
    cancelled = daig("project", "cancel", str(started.id))
    assert cancelled.returncode == 0 and "state: cancelled" in cancelled.stderr
    again = daig("project", "resume", str(started.id))
    assert again.returncode == 1 and "only a paused project can be resumed" in again.stderr
