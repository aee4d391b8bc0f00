"""Providers' own broker accounts on the real RabbitMQ: what they may do, and whose results count.

Credentials come from the real API (``/v1/provider/config``), which creates each account's broker
user through RabbitMQ's management API on the test's vhost. Every refusal here is the broker's
own; the last tests run the real aggregator consumer on results published by those users.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.provider_broker import PARTITIONS, ProviderBroker, provider_broker
from daig.broker import BrokerSession, Publisher, connect, publish_on
from daig.client import ClientError, DaigClient
from daig.contract.messages import EventKind, ProjectEvent, TrainingStatus, TrainResult, TrainTask
from daig.db.models import Claim, Result, Task
from daig.hyperparams import Hyperparameters
from daig.settings import Settings, amqp_vhost
from daig.topology import DEAD, EVENTS, RESULTS_EXCHANGE, TASKS, provider_broker_user
from daig.weights.schema import WeightSchema
from daig_aggregator.handlers import Aggregator
from tests.helpers.projects import Started
from tests.helpers.queues import consuming_results, drain_tasks, ready_count, results_ready
from tests.helpers.results import trained_result
from tests.helpers.services import ApiServer, free_port
from tests.helpers.waiting import wait_until

ACCESS_REFUSED, PRECONDITION_FAILED = 403, 406


@contextmanager
def management(settings: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=settings.management_url, auth=settings.management_credentials, timeout=10
    ) as http:
        yield http


def _user_id(client: DaigClient) -> int:
    return int(client.me().id)


def test_each_account_gets_its_own_stable_least_privilege_broker_user(
    api_server: ApiServer, make_user: Callable[..., DaigClient], amqp_url: str
) -> None:
    alice, bob = make_user(api_server.url, "alice"), make_user(api_server.url, "bob")
    vhost = amqp_vhost(amqp_url)
    first, again, other = alice.provider_config(), alice.provider_config(), bob.provider_config()

    assert first == again, "repeated requests (several agents of one account) agree"
    assert first.broker_user == provider_broker_user(_user_id(alice), vhost)
    assert other.broker_user == provider_broker_user(_user_id(bob), vhost)
    assert other.amqp_url != first.amqp_url
    params = pika.URLParameters(first.amqp_url)
    assert params.credentials.username == first.broker_user
    assert params.virtual_host == vhost
    assert "guest" not in first.amqp_url, "never the server's own credentials"
    connect(first.amqp_url, heartbeat=0).close()

    name = quote(first.broker_user, safe="")
    with management(api_server.settings) as http:
        assert http.get(f"/api/users/{name}").json()["tags"] in ([], "")
        permissions = http.get(f"/api/permissions/{quote(vhost, safe='')}/{name}").json()
    assert (permissions["configure"], permissions["write"], permissions["read"]) == (
        "^$",
        r"^daig\.results$",
        r"^daig\.tasks$",
    )
    whoami = httpx.get(
        f"{api_server.settings.management_url}/api/whoami",
        auth=(params.credentials.username, params.credentials.password),
        timeout=10,
    )
    assert whoami.status_code == 401, "a provider's user cannot use the management API"


def _refusal(broker: ProviderBroker, action: Callable[[BlockingChannel], object]) -> int:
    """The reply code the broker closes the channel with when ``action`` is attempted."""
    channel = broker.channel()
    with pytest.raises(ChannelClosedByBroker) as error:
        action(channel)
    return int(error.value.reply_code)


def test_a_provider_may_consume_tasks_and_publish_results_and_nothing_else(
    api_server: ApiServer,
    make_user: Callable[..., DaigClient],
    broker_session: BrokerSession,
    amqp_url: str,
) -> None:
    project_id = uuid.uuid4()
    task = TrainTask(project_id=project_id, round=0, task_id=uuid.uuid4(), shard=0, attempt=1)
    broker_session.publish(TASKS, task)
    client = make_user(api_server.url, "provider")
    result = TrainResult(
        project_id=project_id,
        round=0,
        task_id=task.task_id,
        claim_id=uuid.uuid4(),
        provider_id=_user_id(client),
        status=TrainingStatus.FAILED,
        error="nothing",
    )
    event = ProjectEvent(project_id=project_id, round=0, kind=EventKind.ROUND_CLOSED)

    with provider_broker(client) as broker:
        method, _, body = broker.channel().basic_get(TASKS.queue, auto_ack=True)
        assert method is not None and TrainTask.model_validate_json(body) == task
        broker.publish(result)  # confirmed
        results = PARTITIONS.route_for(project_id)
        assert ready_count(amqp_url, results.queue) == 1

        def publish(route: Any, message: Any) -> Callable[[BlockingChannel], None]:
            return lambda ch: publish_on(ch, route, message, user_id=broker.user)

        def direct(ch: BlockingChannel) -> None:  # the default exchange routes by queue name
            ch.basic_publish("", TASKS.queue, task.model_dump_json().encode(), mandatory=True)

        forbidden: dict[str, Callable[[BlockingChannel], object]] = {
            "publish a task": publish(TASKS, task),
            "publish an event": publish(EVENTS, event),
            "publish a dead letter": publish(DEAD, result),
            "publish straight to the tasks queue": direct,
            "read results": lambda ch: ch.basic_get(results.queue),
            "read events": lambda ch: ch.basic_get(EVENTS.queue),
            "read dead letters": lambda ch: ch.basic_get(DEAD.queue),
            "declare a queue": lambda ch: ch.queue_declare("daig.mine", durable=True),
            "redeclare the tasks queue": lambda ch: ch.queue_declare(
                TASKS.queue, durable=True, arguments=TASKS.arguments
            ),
            "delete the tasks queue": lambda ch: ch.queue_delete(TASKS.queue),
            "delete the results queue": lambda ch: ch.queue_delete(results.queue),
            "declare an exchange": lambda ch: ch.exchange_declare("daig.mine", "fanout"),
            "delete the results exchange": lambda ch: ch.exchange_delete(RESULTS_EXCHANGE),
            "bind the tasks queue to results": lambda ch: ch.queue_bind(
                TASKS.queue, RESULTS_EXCHANGE, routing_key=results.publish_key
            ),
        }
        refusals = {what: _refusal(broker, action) for what, action in forbidden.items()}
    assert refusals == dict.fromkeys(forbidden, ACCESS_REFUSED)
    assert ready_count(amqp_url, TASKS.queue) == 0
    assert ready_count(amqp_url, EVENTS.queue) == 0
    assert ready_count(amqp_url, results.queue) == 1, "the results are all still there"


def test_the_broker_refuses_a_result_with_a_forged_user_id(
    api_server: ApiServer,
    make_user: Callable[..., DaigClient],
    broker_session: BrokerSession,
    amqp_url: str,
) -> None:
    alice, bob = make_user(api_server.url, "alice"), make_user(api_server.url, "bob")
    alice_user = alice.provider_config().broker_user
    result = TrainResult(
        project_id=uuid.uuid4(),
        round=0,
        task_id=uuid.uuid4(),
        claim_id=uuid.uuid4(),
        provider_id=_user_id(alice),
        status=TrainingStatus.FAILED,
    )
    with provider_broker(bob) as broker:
        with pytest.raises(ChannelClosedByBroker) as error:
            broker.publish_as(result, alice_user)
        assert error.value.reply_code == PRECONDITION_FAILED
    # Not even the servers' administrator may speak for a provider.
    admin = connect(amqp_url, heartbeat=0)
    try:
        channel = admin.channel()
        channel.confirm_delivery()
        with pytest.raises(ChannelClosedByBroker) as error:
            publish_on(channel, PARTITIONS.route_for(result.project_id), result, user_id=alice_user)
        assert error.value.reply_code == PRECONDITION_FAILED
    finally:
        admin.close()
    assert results_ready(amqp_url) == 0


@pytest.mark.parametrize("fault", ["unreachable", "bad-admin-credentials"])
def test_provider_config_is_503_without_the_management_api(
    settings: Settings, make_user: Callable[..., DaigClient], fault: str
) -> None:
    broken = (
        {"rabbitmq_management_url": f"http://127.0.0.1:{free_port()}"}
        if fault == "unreachable"
        else {"rabbitmq_admin_password": "not-the-password"}
    )
    with ApiServer(settings.model_copy(update=broken)) as server:
        client = make_user(server.url, "provider")
        with pytest.raises(ClientError) as error:
            client.provider_config()
    assert error.value.status == 503
    assert error.value.reason == "broker_accounts_unavailable"
    assert "management API" in str(error.value)


# --- whose results count: the real aggregator consumer -------------------------------------------
def _trained(provider_id: int, grant: dict[str, Any], seed: int = 0) -> TrainResult:
    """Upload a small delta for ``grant`` and describe it as ``provider_id``'s result."""
    rng = np.random.default_rng(seed)
    schema = WeightSchema.from_json(grant.weight_schema)
    delta = [(rng.standard_normal(t.shape) * 0.01).astype(t.dtype) for t in schema.tensors]
    return trained_result(grant, provider_id, delta, samples=3, fit_seconds=1.0)


def _outcomes(sessions: sessionmaker[Session], project_id: uuid.UUID) -> dict[uuid.UUID, Any]:
    with sessions() as session:
        rows = session.scalars(select(Result).where(Result.project_id == project_id))
        return {row.message_id: (row.status, row.reason, row.detail) for row in rows}


def test_only_the_claimants_own_broker_user_gets_a_result_accepted(
    start_project: Callable[..., Started],
    make_user: Callable[..., DaigClient],
    api_server: ApiServer,
    aggregator: Aggregator,
    sessions: sessionmaker[Session],
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    alice, mallory = make_user(api_server.url, "alice"), make_user(api_server.url, "mallory")
    alice_id, mallory_id = _user_id(alice), _user_id(mallory)
    grant = alice.claim(drain_tasks(amqp_url)[0].task_id, "alice-agent")
    genuine = _trained(alice_id, grant)
    # Mallory replays Alice's result as Alice, under her own broker user ...
    as_alice = genuine.model_copy(update={"message_id": uuid.uuid4()})
    # ... or as herself, for Alice's claim ...
    as_mallory = genuine.model_copy(update={"message_id": uuid.uuid4(), "provider_id": mallory_id})
    # ... and a result from a connection that does not say who it is.
    unsigned = genuine.model_copy(update={"message_id": uuid.uuid4()})

    with provider_broker(mallory) as mallory_broker, provider_broker(alice) as alice_broker:
        mallory_broker.publish(as_alice)
        mallory_broker.publish(as_mallory)
        publisher = Publisher(amqp_url)
        try:
            publisher.publish(PARTITIONS.route_for(unsigned.project_id), unsigned)
        finally:
            publisher.close()
        alice_broker.publish(genuine)

    def all_recorded() -> dict[uuid.UUID, Any] | None:
        outcomes = _outcomes(sessions, started.id)
        return outcomes if len(outcomes) == 4 else None

    with consuming_results(amqp_url, aggregator):
        outcomes = wait_until(all_recorded, 20, what="all four results recorded")
        wait_until(lambda: results_ready(amqp_url) == 0, 10, what="all acked")

    vhost = amqp_vhost(amqp_url)
    mallory_user = provider_broker_user(mallory_id, vhost)
    alice_user = provider_broker_user(alice_id, vhost)
    assert outcomes[as_alice.message_id] == (
        "rejected",
        "wrong_provider",
        f"published by broker user {mallory_user}, not {alice_user}",
    )
    assert outcomes[as_mallory.message_id][:2] == ("rejected", "wrong_provider")
    assert outcomes[unsigned.message_id] == (
        "rejected",
        "wrong_provider",
        f"published by broker user (none), not {alice_user}",
    )
    assert outcomes[genuine.message_id] == ("accepted", None, None)
    with sessions() as session:
        task = session.get(Task, uuid.UUID(str(grant.task_id)))
        claim = session.get(Claim, uuid.UUID(str(grant.claim_id)))
        assert task is not None and task.state == "done"
        assert claim is not None and claim.state == "finished" and claim.provider_id == alice_id
    assert ready_count(amqp_url, DEAD.queue) == 0
