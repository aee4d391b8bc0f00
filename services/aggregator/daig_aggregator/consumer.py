"""Consuming the result partitions in batches: one connection, one consumer per partition queue.

Every partition queue has a single active consumer (RabbitMQ's ``x-single-active-consumer``):
every aggregator subscribes to every partition, the broker delivers each partition's results
to one of them, and when that one goes away the next waiting one takes over. Deliveries
collect in a buffer while the connection is pumped; the handler receives them in batches
(up to ``batch_size``, lingering briefly for more), and each is settled only after the
handler returned -- after its batch's transaction committed.

An aggregator holding more partitions than its share can hand some over: it cancels its
consumers there and subscribes again, which puts it at the back of those queues' lines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from daig import topology
from daig.broker import (
    RECONNECT_MAX_SECONDS,
    RECONNECT_MIN_SECONDS,
    BrokerSession,
    Delivery,
    Outcome,
    connect,
)

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Delivery], BrokerSession], Sequence[Outcome]]


@dataclass(frozen=True)
class BatchOptions:
    prefetch: int = 64  # per partition queue
    batch_size: int = 128
    linger_seconds: float = 0.005  # how long to wait for more once a delivery is in
    idle_seconds: float = 1.0
    heartbeat: int = 30
    # Failures that pass (the database restarting): the batch is retried in place, its
    # messages kept, never requeued (that would count towards their delivery limit).
    transient: tuple[type[BaseException], ...] = ()


class Subscriptions:
    """The partition consumers of one connection; lets the idle hook hand partitions over."""

    def __init__(self, channel: BlockingChannel, partitions: topology.ResultPartitions) -> None:
        self._channel = channel
        self._partitions = partitions
        self._tags: dict[int, str] = {}
        self.buffer: list[tuple[int, Any, Any, bytes]] = []

    def subscribe(self, partition: int) -> None:
        queue = self._partitions.route(partition).queue
        callback = functools.partial(self._on_message, partition)
        self._tags[partition] = self._channel.basic_consume(queue, callback)

    def hand_over(self, partitions: Sequence[int]) -> None:
        """Stop consuming ``partitions`` and queue up again behind the other aggregators."""
        for partition in partitions:
            tag = self._tags.pop(partition, None)
            if tag is not None:
                self._channel.basic_cancel(tag)
        for partition in partitions:
            self.subscribe(partition)

    def _on_message(self, partition: int, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.buffer.append((partition, method, props, body))


def run_batches(
    url: str,
    partitions: topology.ResultPartitions,
    handler: BatchHandler,
    stop: threading.Event,
    *,
    options: BatchOptions,
    idle: Callable[[BrokerSession, Subscriptions], None] | None = None,
    on_connect: Callable[[BrokerSession], None] | None = None,
) -> None:
    """Consume every result partition until ``stop`` is set, reconnecting with backoff."""
    backoff = RECONNECT_MIN_SECONDS
    while not stop.is_set():
        try:
            _consume_once(url, partitions, handler, stop, options, idle, on_connect)
            backoff = RECONNECT_MIN_SECONDS
        except (AMQPError, OSError) as exc:
            log.warning("broker connection lost (%s); reconnecting in %.1f s", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)


def _consume_once(
    url: str,
    partitions: topology.ResultPartitions,
    handler: BatchHandler,
    stop: threading.Event,
    options: BatchOptions,
    idle: Callable[[BrokerSession, Subscriptions], None] | None,
    on_connect: Callable[[BrokerSession], None] | None,
) -> None:
    connection = connect(url, heartbeat=options.heartbeat)
    try:
        channel = connection.channel()
        topology.declare(channel, partitions.count)
        channel.basic_qos(prefetch_count=options.prefetch)
        session = BrokerSession(connection, connection.channel())
        subscriptions = Subscriptions(channel, partitions)
        for partition in range(partitions.count):
            subscriptions.subscribe(partition)
        if on_connect is not None:
            on_connect(session)
        log.info("consuming %s result partitions", partitions.count)
        last_idle = 0.0
        while not stop.is_set():
            _fill(connection, subscriptions, options)
            if subscriptions.buffer:
                _handle_batch(channel, subscriptions, handler, session, options, stop)
            idle_due = time.monotonic() - last_idle >= options.idle_seconds
            if idle is not None and idle_due and not subscriptions.buffer:
                idle(session, subscriptions)
                last_idle = time.monotonic()
    finally:
        if connection.is_open:
            with contextlib.suppress(AMQPError):
                connection.close()


def _fill(connection: pika.BlockingConnection, subs: Subscriptions, options: BatchOptions) -> None:
    """Pump the connection until a batch is full, or a little after the first delivery."""
    if not subs.buffer:
        connection.process_data_events(time_limit=options.idle_seconds)
    deadline = time.monotonic() + options.linger_seconds
    while subs.buffer and len(subs.buffer) < options.batch_size:
        before = len(subs.buffer)
        connection.process_data_events(time_limit=0)
        if len(subs.buffer) == before:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.0005)


def _handle_batch(
    channel: BlockingChannel,
    subs: Subscriptions,
    handler: BatchHandler,
    session: BrokerSession,
    options: BatchOptions,
    stop: threading.Event,
) -> None:
    size = options.batch_size
    taken, subs.buffer = subs.buffer[:size], subs.buffer[size:]
    deliveries = [_delivery(p, method, props, body) for p, method, props, body in taken]
    outcomes = _outcomes(handler, deliveries, session, options.transient, stop)
    if all(outcome is Outcome.ACK for outcome in outcomes):
        # Delivery tags are the channel's, in order, and earlier batches are settled: one ack
        # with ``multiple`` settles exactly this batch.
        channel.basic_ack(taken[-1][1].delivery_tag, multiple=True)
        return
    for (_, method, _, _), outcome in zip(taken, outcomes, strict=True):
        if outcome is Outcome.ACK:
            channel.basic_ack(method.delivery_tag)
        elif outcome is Outcome.REJECT:
            channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_nack(method.delivery_tag, requeue=True)


def _outcomes(
    handler: BatchHandler,
    deliveries: list[Delivery],
    session: BrokerSession,
    transient: tuple[type[BaseException], ...],
    stop: threading.Event,
) -> Sequence[Outcome]:
    backoff = RECONNECT_MIN_SECONDS
    while True:
        try:
            return handler(deliveries, session)
        except AMQPError:
            raise
        except transient as exc:
            if stop.is_set():
                return [Outcome.REQUEUE] * len(deliveries)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("transient failure (%s); retrying the batch in %.1f s", first, backoff)
            session.pump(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)


def _delivery(partition: int, method: Any, props: Any, body: bytes) -> Delivery:
    headers = dict(props.headers or {})
    return Delivery(
        body=body,
        message_type=props.type,
        redelivered=bool(method.redelivered),
        delivery_count=int(headers.get("x-delivery-count", 0)),
        message_id=props.message_id,
        headers=headers,
        user_id=props.user_id,
        partition=partition,
    )
