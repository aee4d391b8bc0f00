"""A volunteer whose agent swallows task messages is caught and cut off; honest ones are not.

Real RabbitMQ (each volunteer on its own provider broker user), Postgres, the API, the
scheduler and its black-hole watch in threads as in production, and the real aggregator handed
the honest provider's results. The black hole consumes ``daig.tasks`` with a big prefetch and
acks every message without claiming: the watch quarantines its account, deletes its broker
user (closing its connection), the API refuses it a new one, and the project completes. The
honest volunteer beside it, and one whose claims are all refused (stale copies of tasks
someone else holds), are judged and left alone. Lifting the quarantine gives the broker user
back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pika.exceptions import AMQPError
from sqlalchemy.orm import Session, sessionmaker

from bench.provider_broker import provider_broker
from daig import standing
from daig.broker import connect, publish_on
from daig.client import ClientError, DaigClient
from daig.contract.messages import TrainTask
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig.topology import TASKS, provider_broker_user
from daig.weights.schema import WeightSchema
from daig_scheduler.blackholes import BlackHoleWatch
from daig_scheduler.handlers import Scheduler
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started, wait_for_end
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, random_delta
from tests.helpers.scheduling import scheduling, watching
from tests.helpers.services import free_port
from tests.helpers.waiting import wait_until

MIN_MESSAGES = 10


def _fast(settings: Settings) -> Settings:
    """Seconds instead of minutes: republish after 2 s, sample every second, judge at 10."""
    return settings.model_copy(
        update={
            "republish_seconds": 2.0,
            "black_hole_sample_seconds": 1.0,
            "black_hole_window_seconds": 60.0,
            "black_hole_min_messages": MIN_MESSAGES,
        }
    )


class BlackHole(threading.Thread):
    """Consumes with prefetch 100 and acks every task message at once, claiming none."""

    def __init__(self, client: DaigClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.swallowed = 0
        self.cut_off = threading.Event()

    def run(self) -> None:
        try:
            with provider_broker(self.client) as broker:
                channel = broker.connection.channel()
                channel.basic_qos(prefetch_count=100)
                for method, _props, _body in channel.consume(TASKS.queue, inactivity_timeout=0.05):
                    if self.stop.is_set():
                        return
                    if method is not None:
                        self.swallowed += 1
                        channel.basic_ack(method.delivery_tag)
        except AMQPError:
            self.cut_off.set()  # the broker closed the connection


class HonestAgent(threading.Thread):
    """Holds one message at a time, claims it, hands in a result, then acks (as the agent)."""

    def __init__(self, provider: Provider, aggregator: DirectAggregator, schema: WeightSchema):
        super().__init__(daemon=True)
        self.provider, self.aggregator, self.schema = provider, aggregator, schema
        self.stop = threading.Event()
        self.taken = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with provider_broker(self.provider.client) as broker:
                channel = broker.connection.channel()
                channel.basic_qos(prefetch_count=1)
                for method, _props, body in channel.consume(TASKS.queue, inactivity_timeout=0.05):
                    if self.stop.is_set():
                        return
                    if method is not None:
                        self.taken += 1
                        self._work(TrainTask.model_validate_json(body))
                        channel.basic_ack(method.delivery_tag)
        except BaseException as exc:
            self.failure = exc

    def _work(self, task: TrainTask) -> None:
        try:
            grant = self.provider.claim(task.task_id)
        except ClientError:
            return  # stale or taken: acked without a claim, as the agent does
        delta = random_delta(self.schema, seed=grant.shard)
        self.aggregator.handle(self.provider.result(grant, delta))


def _quarantined(sessions: sessionmaker[Session], user_id: int) -> bool:
    with sessions() as session:
        return standing.is_quarantined(session, user_id)


def _broker_user_exists(settings: Settings, user_id: int) -> bool:
    name = provider_broker_user(user_id, settings.amqp_vhost)
    response = httpx.get(
        f"{settings.management_url}/api/users/{quote(name, safe='')}",
        auth=settings.management_credentials,
    )
    return response.status_code == 200


def test_a_black_hole_is_quarantined_and_cut_off_and_the_honest_provider_is_not(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    sessions: sessionmaker[Session],
    settings: Settings,
    amqp_url: str,
    aggregator: DirectAggregator,
    schema: WeightSchema,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fast = _fast(settings)
    mallory = make_user(api_server.url, "mallory")
    mallory_id = mallory.me().id
    honest = HonestAgent(Provider(make_user(api_server.url, "honest")), aggregator, schema)
    thief = BlackHole(mallory)
    watch = BlackHoleWatch(sessions, fast)
    caplog.set_level(logging.WARNING, logger="daig_scheduler.blackholes")
    with scheduling(amqp_url, Scheduler(sessions, fast)), watching(watch):
        thief.start()
        honest.start()
        try:
            started = start_project(
                Hyperparameters(total_tasks=3, task_size=3, passes=12), reconcile=False
            )
            wait_until(thief.cut_off.is_set, 60, what="the black hole cut off")
            done = wait_for_end(started.owner, started.id, timeout=120)
        finally:
            thief.stop.set()
            honest.stop.set()
            thief.join(10)
            honest.join(10)
    assert honest.failure is None, honest.failure
    assert done.state == "done"
    assert thief.swallowed >= MIN_MESSAGES
    assert honest.taken >= MIN_MESSAGES  # judged too, and not found a black hole
    assert not _quarantined(sessions, honest.provider.id)
    assert _quarantined(sessions, mallory_id)
    assert not _broker_user_exists(fast, mallory_id)
    report = mallory.standing()
    assert report.quarantined and report.reason is not None
    assert "task messages in" in report.reason and "claimed none" in report.reason
    assert any("quarantined as a black hole" in r.getMessage() for r in caplog.records)
    with pytest.raises(ClientError) as refused:
        mallory.provider_config()
    assert refused.value.status == 403 and refused.value.reason == "quarantined"
    assert "quarantined" in str(refused.value) and "lift" in str(refused.value)

    with sessions.begin() as session:
        standing.lift_quarantine(session, mallory.me().username, "reviewed in the test")
    config = mallory.provider_config()  # the broker user is made again
    assert _broker_user_exists(fast, mallory_id)
    connect(config.amqp_url, heartbeat=0).close()


def test_an_agent_whose_claims_are_all_refused_is_no_black_hole(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    sessions: sessionmaker[Session],
    settings: Settings,
    amqp_url: str,
) -> None:
    """Stale copies of tasks another volunteer holds: every claim is refused (409), and the
    agent acks each message after trying. Its refusals count as attempts."""
    watch = BlackHoleWatch(sessions, _fast(settings))
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    first = Provider(make_user(api_server.url, "first"))
    tasks = drain_tasks(amqp_url)
    for task in tasks:
        first.claim(task.task_id)
    copies = 2 * MIN_MESSAGES
    _republish(amqp_url, tasks, copies)
    late = Provider(make_user(api_server.url, "late"))
    refused = _take_each_refused(watch, late, copies)
    assert len(refused) == copies
    assert not _quarantined(sessions, late.id)
    assert started.owner.project(started.id).state == "running"


def _take_each_refused(watch: BlackHoleWatch, agent: Provider, copies: int) -> list[ClientError]:
    """As an honest agent: take the queued task messages one at a time, try to claim each
    (every claim must be refused) and ack it, while ``watch`` runs; then wait until the watch
    counted all ``copies`` and made a pass or two more. The refusals, in order."""
    refusals: list[ClientError] = []
    with watching(watch), provider_broker(agent.client) as broker:
        channel = broker.connection.channel()
        channel.basic_qos(prefetch_count=1)
        for method, _props, body in channel.consume(TASKS.queue, inactivity_timeout=5):
            if method is None:
                break
            with pytest.raises(ClientError) as refused:
                agent.claim(TrainTask.model_validate_json(body).task_id)
            refusals.append(refused.value)
            channel.basic_ack(method.delivery_tag)
        channel.cancel()
        # The counters reach the management API within its 5 s statistics interval.
        wait_until(lambda: (watch.taken(agent.id) or 0) >= copies, 20, what="the agent's messages")
        time.sleep(2)  # a pass or two after it was counted
    return refusals


def _republish(amqp_url: str, tasks: list[TrainTask], copies: int) -> None:
    admin = connect(amqp_url, heartbeat=0)
    try:
        channel = admin.channel()
        channel.confirm_delivery()
        for n in range(copies):
            publish_on(channel, TASKS, tasks[n % len(tasks)])
    finally:
        admin.close()


def test_an_agent_draining_a_deleted_projects_messages_is_no_black_hole(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    sessions: sessionmaker[Session],
    settings: Settings,
    amqp_url: str,
) -> None:
    """A deleted project's task messages stay queued until they expire; an honest agent that
    takes them is refused each (404 ``unknown_task``) and acks it. Those are tries too."""
    watch = BlackHoleWatch(sessions, _fast(settings))
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    copies = 2 * MIN_MESSAGES
    _republish(amqp_url, drain_tasks(amqp_url), copies)
    started.owner.cancel(started.id)
    started.owner.delete_project(started.id)
    agent = Provider(make_user(api_server.url, "agent"))
    refused = _take_each_refused(watch, agent, copies)
    assert sum(error.reason == "unknown_task" for error in refused) == copies
    assert not _quarantined(sessions, agent.id)


def test_an_unreachable_management_api_skips_the_pass(
    sessions: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    gone = settings.model_copy(
        update={"rabbitmq_management_url": f"http://127.0.0.1:{free_port()}"}
    )
    caplog.set_level(logging.WARNING, logger="daig_scheduler.blackholes")
    assert BlackHoleWatch(sessions, gone).check_safely() == []
    assert any("black-hole check skipped" in r.getMessage() for r in caplog.records)
