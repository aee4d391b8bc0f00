"""A volunteer cannot stall a project by making its task messages disappear.

Any provider's broker user may read the shared tasks queue, and RabbitMQ ties purging a queue
to the same permission: an ordinary volunteer can purge ``daig.tasks`` or consume and ack
task messages without claiming them. Both attacks are made here with a real provider broker
user; the scheduler publishes every task still unclaimed after ``republish_seconds`` again,
and an honest provider gets the project going within that bound.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.provider_broker import provider_broker
from daig.client import ClientError, DaigClient
from daig.contract.messages import TrainTask
from daig.db.models import Task
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig.topology import TASKS
from daig_scheduler.handlers import Scheduler
from tests.helpers.projects import Started
from tests.helpers.queues import ready_count
from tests.helpers.scheduling import scheduling
from tests.helpers.waiting import wait_until

REPUBLISH_SECONDS = 2.0


def _honest_claims(client: DaigClient, wanted: int, timeout: float) -> float:
    """Consume task messages as the agent does (prefetch 1) and claim them until ``wanted``
    claims succeeded; the seconds it took."""
    began = time.monotonic()
    claimed = 0
    with provider_broker(client) as broker:
        channel = broker.connection.channel()
        channel.basic_qos(prefetch_count=1)
        for method, _props, body in channel.consume(TASKS.queue, inactivity_timeout=0.05):
            assert time.monotonic() - began < timeout, f"only {claimed} tasks claimed"
            if method is None:
                continue
            task = TrainTask.model_validate_json(body)
            try:
                client.claim(task.task_id, "honest-agent")
                claimed += 1
            except ClientError:
                pass  # a copy of a task already claimed
            channel.basic_ack(method.delivery_tag)
            if claimed == wanted:
                break
        channel.cancel()
    return time.monotonic() - began


def _pending_or_queued(sessions: sessionmaker[Session], project_id: uuid.UUID) -> int:
    with sessions() as session:
        rows = session.scalars(
            select(Task).where(Task.project_id == project_id, Task.state.in_(["queued", "pending"]))
        )
        return len(list(rows))


def test_a_purged_tasks_queue_costs_seconds_not_the_project(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    sessions: sessionmaker[Session],
    settings: Settings,
    amqp_url: str,
) -> None:
    scheduler = Scheduler(
        sessions, settings.model_copy(update={"republish_seconds": REPUBLISH_SECONDS})
    )
    with scheduling(amqp_url, scheduler):
        started = start_project(Hyperparameters(total_tasks=3, task_size=3), reconcile=False)
        wait_until(lambda: ready_count(amqp_url, TASKS.queue) == 3, 10, what="3 task messages")
        mallory = make_user(api_server.url, "mallory")
        with provider_broker(mallory) as broker:  # an ordinary volunteer's broker user
            purged = broker.connection.channel().queue_purge(TASKS.queue)
        assert purged.method.message_count == 3
        assert ready_count(amqp_url, TASKS.queue) == 0
        honest = make_user(api_server.url, "honest")
        seconds = _honest_claims(honest, 3, timeout=REPUBLISH_SECONDS + 10)
    assert seconds <= REPUBLISH_SECONDS + 3, seconds
    assert _pending_or_queued(sessions, started.id) == 0


def test_a_consumer_that_swallows_task_messages_costs_seconds_not_the_project(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    sessions: sessionmaker[Session],
    settings: Settings,
    amqp_url: str,
) -> None:
    scheduler = Scheduler(
        sessions, settings.model_copy(update={"republish_seconds": REPUBLISH_SECONDS})
    )
    mallory = make_user(api_server.url, "mallory")
    swallowed: list[uuid.UUID] = []
    stop = threading.Event()

    def black_hole() -> None:
        """Consume with a big prefetch and ack everything at once, claiming nothing."""
        with provider_broker(mallory) as broker:
            channel = broker.connection.channel()
            channel.basic_qos(prefetch_count=100)
            for method, _props, body in channel.consume(TASKS.queue, inactivity_timeout=0.05):
                if stop.is_set():
                    break
                if method is not None:
                    swallowed.append(TrainTask.model_validate_json(body).task_id)
                    channel.basic_ack(method.delivery_tag)
            channel.cancel()

    thief = threading.Thread(target=black_hole, daemon=True)
    thief.start()
    try:
        with scheduling(amqp_url, scheduler):
            started = start_project(Hyperparameters(total_tasks=3, task_size=3), reconcile=False)
            wait_until(lambda: len(swallowed) >= 3, 10, what="the first messages swallowed")
            honest = make_user(api_server.url, "honest")
            # The thief keeps taking its share of every republication; the honest provider
            # still gets every task within a few republications.
            seconds = _honest_claims(honest, 3, timeout=10 * REPUBLISH_SECONDS)
    finally:
        stop.set()
        thief.join(10)
    assert len(swallowed) >= 3
    assert seconds <= 6 * REPUBLISH_SECONDS, seconds
    assert _pending_or_queued(sessions, started.id) == 0
