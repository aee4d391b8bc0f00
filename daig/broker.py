"""pika 1.4 plumbing: confirmed publishing and a reconnecting consumer loop.

One connection per thread. Every publish waits for the broker's confirm and is ``mandatory``
(an unroutable message is an error, not a silent drop). Consumers ack only after their
handler returned ``Outcome.ACK`` -- i.e. after the effect is durable -- and dead-letter what
they cannot parse. Connection loss is retried with capped backoff, forever, until stopped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from daig import topology
from daig.contract.messages import Message, MessageRejected
from daig.publishing import ConfirmingChannel, message_properties

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0


def connection_parameters(url: str, *, heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    return params


def connect(url: str, *, heartbeat: int = 30) -> pika.BlockingConnection:
    return pika.BlockingConnection(connection_parameters(url, heartbeat=heartbeat))


def properties(message: Message, user_id: str | None = None) -> pika.BasicProperties:
    return message_properties(
        message_id=str(message.message_id),
        message_type=message.type_name,
        timestamp=int(message.sent_at.timestamp()),
        user_id=user_id,
    )


def publish_on(
    channel: BlockingChannel,
    route: topology.Route,
    message: Message,
    *,
    user_id: str | None = None,
) -> None:
    """Publish on a channel in confirm mode; raises if the broker nacks or cannot route.

    ``user_id`` must be the connection's own broker user: RabbitMQ validates it (closing the
    channel with 406 PRECONDITION_FAILED otherwise), so consumers can trust who sent it.
    """
    channel.basic_publish(
        exchange=route.exchange,
        routing_key=route.publish_key,
        body=message.model_dump_json().encode(),
        properties=properties(message, user_id),
        mandatory=True,
    )


class Publisher:
    """A thread-safe, lazily connected, confirming publisher for processes that don't consume."""

    def __init__(self, url: str, partitions: int = topology.DEFAULT_RESULT_PARTITIONS) -> None:
        self._url = url
        self._partitions = partitions
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def publish(self, route: topology.Route, message: Message) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    publish_on(self._ensure_channel(), route, message)
                    return
                except AMQPError:
                    self._reset()
                    if attempt == 2:
                        raise

    def _ensure_channel(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            # No heartbeat: this connection is idle between publishes; a dead one is retried.
            self._connection = connect(self._url, heartbeat=0)
            self._channel = self._connection.channel()
            topology.declare(self._channel, self._partitions)
            self._channel.confirm_delivery()
        return self._channel

    def _reset(self) -> None:
        try:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
        except AMQPError:
            pass
        self._connection = None
        self._channel = None

    def close(self) -> None:
        with self._lock:
            self._reset()


class Outcome(Enum):
    ACK = "ack"  # done, effect durable
    REJECT = "reject"  # cannot ever be handled: dead-letter it
    REQUEUE = "requeue"  # transient failure: try again later


@dataclass(frozen=True)
class Delivery:
    body: bytes
    message_type: str | None
    redelivered: bool
    delivery_count: int
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    # The publisher's broker user, validated by RabbitMQ; None if the publisher set none.
    user_id: str | None = None
    partition: int | None = None  # the result partition queue it came from, if one


class BrokerSession:
    """What a handler may use besides the message: publishing and pumping the connection."""

    def __init__(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        self.connection = connection
        self._channel = channel
        self._confirming: ConfirmingChannel | None = None

    def confirming(self) -> ConfirmingChannel:
        """A channel of this connection that publishes batches with one wait for confirms."""
        if self._confirming is None or not self._confirming.is_open:
            self._confirming = ConfirmingChannel(self.connection)
        return self._confirming

    def publish(
        self, route: topology.Route, message: Message, *, user_id: str | None = None
    ) -> None:
        publish_on(self._channel, route, message, user_id=user_id)

    def pump(self, seconds: float) -> None:
        """Wait while keeping the connection alive (heartbeats) -- use during long work."""
        self.connection.sleep(seconds)


Handler = Callable[[Delivery, BrokerSession], Outcome]
IdleHook = Callable[[BrokerSession], None]
Transient = tuple[type[BaseException], ...]


@dataclass(frozen=True)
class ConsumerOptions:
    """How a consumer loop behaves besides its queue and handler.

    ``transient`` exceptions (e.g. the database restarting) are retried in place with
    backoff, without giving the message back: a requeue would count towards the queue's
    delivery limit and could dead-letter a perfectly good message during an outage.
    ``on_connect`` runs after every (re)connection, before consuming. ``declare=False`` is
    for clients without the ``configure`` permission (providers): they consume queues the
    servers declared and, until those exist, keep retrying. ``partitions`` is the number of
    result partitions declared with the topology.
    """

    prefetch: int = 1
    idle: IdleHook | None = None
    idle_seconds: float = 1.0
    heartbeat: int = 30
    transient: Transient = ()
    on_connect: IdleHook | None = None
    declare: bool = True
    partitions: int = topology.DEFAULT_RESULT_PARTITIONS


def run_consumer(
    url: str,
    queue: str,
    handler: Handler,
    stop: threading.Event,
    *,
    prefetch: int = 1,
    idle: IdleHook | None = None,
    idle_seconds: float = 1.0,
    heartbeat: int = 30,
    transient: Transient = (),
    on_connect: IdleHook | None = None,
    declare: bool = True,
    partitions: int = topology.DEFAULT_RESULT_PARTITIONS,
    on_lost: Callable[[BaseException, float], None] | None = None,
) -> None:
    """Consume ``queue`` until ``stop`` is set, reconnecting with capped backoff.

    ``on_lost(error, seconds)`` hears of each lost or refused connection and the wait before
    the next try (a volunteer's GUI shows it)."""
    options = ConsumerOptions(
        prefetch, idle, idle_seconds, heartbeat, transient, on_connect, declare, partitions
    )
    backoff = RECONNECT_MIN_SECONDS
    while not stop.is_set():
        try:
            _consume_once(url, queue, handler, stop, options)
            backoff = RECONNECT_MIN_SECONDS
        except (AMQPError, OSError) as exc:
            log.warning("broker connection lost (%s); reconnecting in %.1f s", exc, backoff)
            if on_lost is not None:
                on_lost(exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)


def _consume_once(
    url: str, queue: str, handler: Handler, stop: threading.Event, options: ConsumerOptions
) -> None:
    connection = connect(url, heartbeat=options.heartbeat)
    try:
        channel = connection.channel()
        if options.declare:
            topology.declare(channel, options.partitions)
        channel.basic_qos(prefetch_count=options.prefetch)
        publish_channel = connection.channel()
        publish_channel.confirm_delivery()
        session = BrokerSession(connection, publish_channel)
        if options.on_connect is not None:
            options.on_connect(session)
        log.info("consuming %s", queue)
        last_idle = 0.0
        for method, props, body in channel.consume(queue, inactivity_timeout=options.idle_seconds):
            if stop.is_set():
                break
            if method is not None:
                delivery = Delivery(
                    body=body,
                    message_type=props.type,
                    redelivered=bool(method.redelivered),
                    delivery_count=int((props.headers or {}).get("x-delivery-count", 0)),
                    message_id=props.message_id,
                    headers=dict(props.headers or {}),
                    user_id=props.user_id,
                )
                outcome = _handle(handler, delivery, session, options.transient, stop)
                _settle(channel, method.delivery_tag, outcome)
            if options.idle is not None and time.monotonic() - last_idle >= options.idle_seconds:
                _run_idle(options.idle, session, options.transient)
                last_idle = time.monotonic()
        channel.cancel()
    finally:
        if connection.is_open:
            with contextlib.suppress(AMQPError):
                connection.close()


def _handle(
    handler: Handler,
    delivery: Delivery,
    session: BrokerSession,
    transient: Transient,
    stop: threading.Event,
) -> Outcome:
    backoff = RECONNECT_MIN_SECONDS
    while True:
        try:
            return handler(delivery, session)
        except MessageRejected as exc:
            log.warning("dead-lettering message: %s", exc)
            return Outcome.REJECT
        except AMQPError:
            raise
        except transient as exc:
            if stop.is_set():
                return Outcome.REQUEUE
            log.warning("transient failure (%s); retrying in %.1f s", _first_line(exc), backoff)
            session.pump(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
        except Exception:
            log.exception("handler failed; the message will be redelivered")
            session.pump(1.0)
            return Outcome.REQUEUE


def _run_idle(idle: IdleHook, session: BrokerSession, transient: Transient) -> None:
    try:
        idle(session)
    except AMQPError:
        raise
    except transient as exc:
        log.warning("periodic work failed (%s); retrying on the next tick", _first_line(exc))
    except Exception:
        log.exception("periodic work failed; retrying on the next tick")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _settle(channel: BlockingChannel, tag: int, outcome: Outcome) -> None:
    if outcome is Outcome.ACK:
        channel.basic_ack(tag)
    elif outcome is Outcome.REJECT:
        channel.basic_reject(tag, requeue=False)
    else:
        channel.basic_nack(tag, requeue=True)


def queue_depths(url: str, partitions: int = topology.DEFAULT_RESULT_PARTITIONS) -> dict[str, int]:
    """Messages ready in each DAIG queue (the result partitions summed as ``daig.results``).

    The topology is declared first (idempotent, as every DAIG client does on connecting):
    on a fresh broker the queues do not exist until some process declares them, and a
    missing queue must not make a reachable broker look down.
    """
    connection = connect(url, heartbeat=0)
    try:
        channel = connection.channel()
        topology.declare(channel, partitions)
        depths: dict[str, int] = {}
        for route in topology.all_routes(partitions):
            frame = channel.queue_declare(route.queue, passive=True)
            name = (
                topology.RESULTS_EXCHANGE
                if route.exchange == topology.RESULTS_EXCHANGE
                else route.queue
            )
            depths[name] = depths.get(name, 0) + int(frame.method.message_count)
        return depths
    finally:
        connection.close()
