"""The pika plumbing against a real RabbitMQ vhost: confirmed publishing, the consumer loop,
dead-lettering, the declared topology, queue depths and reconnection.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pika
import pytest
from pika.exceptions import UnroutableError

from daig import topology
from daig.broker import (
    BrokerSession,
    Delivery,
    Outcome,
    Publisher,
    connect,
    queue_depths,
    run_consumer,
)
from daig.contract.messages import TrainTask, decode
from daig_cli.rabbitmqctl import rabbitmqctl
from tests.helpers.queues import drain, ready_count
from tests.helpers.waiting import wait_until


def _task() -> TrainTask:
    return TrainTask(project_id=uuid.uuid4(), round=2, task_id=uuid.uuid4(), shard=5, attempt=1)


@pytest.fixture
def publisher(amqp_url: str) -> Iterator[Publisher]:
    publisher = Publisher(amqp_url)
    yield publisher
    publisher.close()


@contextmanager
def consuming(
    amqp_url: str, queue: str, handler: Callable[[Delivery, BrokerSession], Outcome]
) -> Iterator[threading.Thread]:
    """``run_consumer`` in a thread, stopped through its Event when the block ends."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_consumer,
        args=(amqp_url, queue, handler, stop),
        kwargs={"idle_seconds": 0.2},
        daemon=True,
    )
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "run_consumer did not stop when its Event was set"


def test_published_message_is_consumed_exactly_once(amqp_url: str, publisher: Publisher) -> None:
    received: list[Delivery] = []

    def handler(delivery: Delivery, _: BrokerSession) -> Outcome:
        received.append(delivery)
        return Outcome.ACK

    message = _task()
    publisher.publish(topology.TASKS, message)  # returns only once the broker confirmed
    assert ready_count(amqp_url, topology.TASKS.queue) == 1
    with consuming(amqp_url, topology.TASKS.queue, handler):
        wait_until(lambda: received, 10, what="the message")
        wait_until(lambda: ready_count(amqp_url, topology.TASKS.queue) == 0, 5, what="the ack")
    assert len(received) == 1
    assert received[0].message_type == "daig.TrainTask"
    assert received[0].redelivered is False
    assert decode(TrainTask, received[0].body, received[0].message_type) == message
    # Acked, not merely delivered: nothing comes back once the consumer has gone.
    assert ready_count(amqp_url, topology.TASKS.queue) == 0
    assert ready_count(amqp_url, topology.DEAD_LETTER_QUEUE) == 0


def test_published_messages_are_persistent_and_labelled(
    amqp_url: str, publisher: Publisher
) -> None:
    message = _task()
    publisher.publish(topology.TASKS, message)
    [(props, body)] = drain(amqp_url, topology.TASKS.queue)
    assert props.delivery_mode == pika.DeliveryMode.Persistent.value
    assert props.content_type == "application/json"
    assert props.message_id == str(message.message_id)
    assert props.type == "daig.TrainTask"
    assert json.loads(body)["schema_version"] == 1


def test_unroutable_message_is_an_error_not_a_silent_drop(publisher: Publisher) -> None:
    nowhere = topology.Route("daig.tasks", "direct", "daig.tasks", "task", "no-such-binding")
    with pytest.raises(UnroutableError):
        publisher.publish(nowhere, _task())


def _dead_letters(amqp_url: str) -> list[tuple[pika.BasicProperties, bytes]]:
    wait_until(
        lambda: ready_count(amqp_url, topology.DEAD_LETTER_QUEUE) > 0, 10, what="a dead letter"
    )
    return drain(amqp_url, topology.DEAD_LETTER_QUEUE)


def test_rejected_message_lands_in_the_dead_letter_queue(
    amqp_url: str, publisher: Publisher
) -> None:
    calls: list[Delivery] = []

    def handler(delivery: Delivery, _: BrokerSession) -> Outcome:
        calls.append(delivery)
        return Outcome.REJECT

    message = _task()
    publisher.publish(topology.TASKS, message)
    with consuming(amqp_url, topology.TASKS.queue, handler):
        [(props, body)] = _dead_letters(amqp_url)
    assert len(calls) == 1  # rejected without requeue: never redelivered
    assert decode(TrainTask, body, props.type) == message
    assert props.headers["x-first-death-reason"] == "rejected"
    assert props.headers["x-first-death-queue"] == topology.TASKS.queue
    assert ready_count(amqp_url, topology.TASKS.queue) == 0


def test_undecodable_message_is_dead_lettered(amqp_url: str) -> None:
    calls: list[bytes] = []

    def handler(delivery: Delivery, _: BrokerSession) -> Outcome:
        calls.append(delivery.body)
        decode(TrainTask, delivery.body, delivery.message_type)  # raises MessageRejected
        return Outcome.ACK

    connection = connect(amqp_url)
    channel = connection.channel()
    topology.declare(channel)
    channel.confirm_delivery()
    for body, type_name in ((b"{not json", "daig.TrainTask"), (b"{}", "daig.TrainTask")):
        channel.basic_publish(
            "daig.tasks", "task", body, pika.BasicProperties(type=type_name), mandatory=True
        )
    connection.close()
    with consuming(amqp_url, topology.TASKS.queue, handler):
        wait_until(lambda: len(calls) == 2, 10, what="both deliveries")
        wait_until(
            lambda: ready_count(amqp_url, topology.DEAD_LETTER_QUEUE) == 2, 10, what="2 letters"
        )
    bodies = sorted(body for _, body in drain(amqp_url, topology.DEAD_LETTER_QUEUE))
    assert bodies == [b"{not json", b"{}"]
    assert calls == [b"{not json", b"{}"]  # each handled once, not retried


def test_requeued_message_is_redelivered_then_acked(amqp_url: str, publisher: Publisher) -> None:
    deliveries: list[Delivery] = []

    def handler(delivery: Delivery, _: BrokerSession) -> Outcome:
        deliveries.append(delivery)
        return Outcome.REQUEUE if len(deliveries) == 1 else Outcome.ACK

    publisher.publish(topology.TASKS, _task())
    with consuming(amqp_url, topology.TASKS.queue, handler):
        wait_until(lambda: len(deliveries) >= 2, 10, what="the redelivery")
        wait_until(lambda: ready_count(amqp_url, topology.TASKS.queue) == 0, 5, what="the ack")
    assert [d.redelivered for d in deliveries] == [False, True]
    assert deliveries[1].delivery_count == 1  # quorum queues count redeliveries
    assert deliveries[0].body == deliveries[1].body
    assert ready_count(amqp_url, topology.DEAD_LETTER_QUEUE) == 0


def test_a_message_that_always_fails_is_dead_lettered_at_the_delivery_limit(
    amqp_url: str, publisher: Publisher
) -> None:
    deliveries: list[Delivery] = []

    def handler(delivery: Delivery, _: BrokerSession) -> Outcome:
        deliveries.append(delivery)
        return Outcome.REQUEUE

    message = _task()
    publisher.publish(topology.TASKS, message)
    with consuming(amqp_url, topology.TASKS.queue, handler):
        [(props, body)] = _dead_letters(amqp_url)
    assert len(deliveries) == topology.DELIVERY_LIMIT + 1  # not an endless redelivery loop
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    assert decode(TrainTask, body, props.type) == message


def test_queues_are_durable_quorum_queues_with_dead_lettering(amqp_url: str) -> None:
    connection = connect(amqp_url)
    channel = connection.channel()
    topology.declare(channel)
    topology.declare(channel)  # idempotent
    routes = topology.all_routes(topology.DEFAULT_RESULT_PARTITIONS)
    for route in routes:
        channel.queue_declare(route.queue, passive=True)
    connection.close()
    vhost = amqp_url.rsplit("/", 1)[1]
    listing = rabbitmqctl(
        "list_queues", "-p", vhost, "--formatter", "json", "--quiet",
        "name", "type", "durable", "arguments",
    )  # fmt: skip
    queues = {q["name"]: q for q in json.loads(listing.stdout)}
    assert set(queues) == {route.queue for route in routes}
    assert sum(1 for name in queues if name.startswith("daig.results.")) == 16
    for name, queue in queues.items():
        assert queue["type"] == "quorum", name
        assert queue["durable"] is True, name
    partitions = topology.ResultPartitions(topology.DEFAULT_RESULT_PARTITIONS).routes()
    for route in (topology.TASKS, topology.EVENTS, *partitions):
        arguments = dict(_pairs(queues[route.queue]["arguments"]))
        assert arguments["x-dead-letter-exchange"] == topology.DEAD_LETTER_EXCHANGE
        assert arguments["x-delivery-limit"] == topology.DELIVERY_LIMIT
    for route in partitions:  # each partition is recorded by one aggregator at a time
        assert dict(_pairs(queues[route.queue]["arguments"]))["x-single-active-consumer"]


def _pairs(arguments: object) -> list[tuple[str, object]]:
    # rabbitmqctl prints arguments as [[name, type, value], ...] or as a mapping, by version.
    if isinstance(arguments, dict):
        return list(arguments.items())
    assert isinstance(arguments, list)
    return [(item[0], item[-1]) for item in arguments]


def test_queue_depths_counts_ready_messages(amqp_url: str, publisher: Publisher) -> None:
    from daig.contract.messages import EventKind, ProjectEvent

    for _ in range(3):
        publisher.publish(topology.TASKS, _task())
    publisher.publish(
        topology.EVENTS,
        ProjectEvent(project_id=uuid.uuid4(), round=0, kind=EventKind.PROJECT_STARTED),
    )
    assert queue_depths(amqp_url) == {
        "daig.tasks": 3,
        "daig.results": 0,
        "daig.scheduler.events": 1,
        "daig.dead": 0,
    }


def test_queue_depths_on_a_fresh_vhost_are_zero_not_an_error(amqp_url: str) -> None:
    # Nothing has declared the topology yet (e.g. only the API runs): the broker is still up.
    assert queue_depths(amqp_url) == {
        "daig.tasks": 0,
        "daig.results": 0,
        "daig.scheduler.events": 0,
        "daig.dead": 0,
    }


def test_consumer_reconnects_after_the_broker_drops_it(amqp_url: str, publisher: Publisher) -> None:
    received: list[bytes] = []

    def handler(delivery: Delivery, _: BrokerSession) -> Outcome:
        received.append(delivery.body)
        return Outcome.ACK

    vhost = amqp_url.rsplit("/", 1)[1]
    with consuming(amqp_url, topology.TASKS.queue, handler):
        publisher.publish(topology.TASKS, _task())
        wait_until(lambda: len(received) == 1, 10, what="the first message")
        rabbitmqctl("close_all_connections", "--vhost", vhost, "integration test")
        publisher.publish(topology.TASKS, _task())  # the publisher reconnects too
        wait_until(lambda: len(received) == 2, 20, what="a message after reconnecting")
    assert received[0] != received[1]
