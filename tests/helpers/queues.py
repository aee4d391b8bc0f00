"""Looking into the broker's queues, and the aggregator consuming them in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pika

from daig.broker import connect, queue_depths
from daig.contract.messages import TrainTask, decode
from daig.process import TRANSIENT_ERRORS
from daig_aggregator.consumer import BatchOptions, run_batches
from daig_aggregator.handlers import Aggregator


def ready_count(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue`` (passive declare)."""
    connection = connect(amqp_url, heartbeat=0)
    try:
        frame = connection.channel().queue_declare(queue, passive=True)
        return int(frame.method.message_count)
    finally:
        connection.close()


def drain(amqp_url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take (and ack) every message ready in ``queue``."""
    connection = connect(amqp_url, heartbeat=0)
    try:
        channel = connection.channel()
        messages = []
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return messages
            channel.basic_ack(method.delivery_tag)
            messages.append((props, body))
    finally:
        connection.close()


@contextmanager
def consuming_results(
    amqp_url: str, aggregator: Aggregator, on_connect: Callable[..., None] | None = None
) -> Iterator[None]:
    """The aggregator consuming every result partition in a thread, as in production."""
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_batches,
        args=(amqp_url, aggregator.partitions, aggregator.on_batch, stop),
        kwargs={
            "options": BatchOptions(idle_seconds=0.2, transient=TRANSIENT_ERRORS),
            "idle": aggregator.idle,
            "on_connect": on_connect,
        },
        daemon=True,
    )
    consumer.start()
    try:
        yield
    finally:
        stop.set()
        consumer.join(10)


def results_ready(amqp_url: str) -> int:
    """Result messages waiting in every partition queue."""
    return queue_depths(amqp_url)["daig.results"]


def drain_tasks(amqp_url: str) -> list[TrainTask]:
    return [decode(TrainTask, body, props.type) for props, body in drain(amqp_url, "daig.tasks")]
