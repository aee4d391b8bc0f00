"""Simulated providers' broker connections: pika's native asyncio adapter, no threads.

A ``Link`` is one AMQP connection as an account's own broker user. It hosts a few simulated
providers: each has its own consumer channel with prefetch 1 on the tasks queue (as a real
agent has), and they share one publish channel in confirm mode, whose confirms are matched to
publishes by sequence number. RabbitMQ's socket limit (~800 by default) rules out one
connection per provider at 1,000 providers; per message the broker does the same work.

If the connection drops (other people's tests restart the broker now and then), the link
reconnects with backoff and re-opens every consumer; a task message of the lost channel is
redelivered by the broker, and publishes in flight fail with ``PublishFailed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel
from pika.exceptions import AMQPError

from daig.broker import connection_parameters

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 60
RECONNECT_MAX_SECONDS = 10.0
RPC_SECONDS = 30.0  # a channel operation unanswered this long: the connection is gone


class PublishFailed(Exception):
    """The broker did not confirm a publish; ``reason`` says why in a word or two."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason

    @property
    def retriable(self) -> bool:
        """Lost with its channel or connection (not refused): publish again once reconnected."""
        return self.reason in ("connection lost", "channel closed", "no channel")


@dataclass(frozen=True)
class Delivery:
    """A task message as a provider gets it; settled on the channel it came on."""

    channel: Channel
    tag: int
    body: bytes
    message_type: str | None

    def ack(self) -> None:
        if self.channel.is_open:  # else the broker gives it to someone else
            self.channel.basic_ack(self.tag)

    def requeue(self) -> None:
        if self.channel.is_open:
            self.channel.basic_nack(self.tag, requeue=True)

    def reject(self) -> None:
        """Dead-letter it (a message that cannot be read)."""
        if self.channel.is_open:
            self.channel.basic_reject(self.tag, requeue=False)


Inbox = asyncio.Queue[Delivery]


async def _rpc(start: Callable[[Callable[..., None]], Any]) -> Any:
    """Call ``start(callback)`` and wait for pika to call back; its first argument.

    pika never calls back if the connection drops meanwhile, hence the timeout.
    """
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(*args: Any) -> None:
        if not future.done():
            future.set_result(args[0] if args else None)

    start(done)
    return await asyncio.wait_for(future, RPC_SECONDS)


class Link:
    """One broker connection of an account: consumers for its providers, confirmed publishes."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        self._params = connection_parameters(amqp_url, heartbeat=HEARTBEAT_SECONDS)
        self._queue = queue
        self._inboxes: list[Inbox] = []
        self._connection: AsyncioConnection | None = None
        self._publisher: Channel | None = None
        # publish sequence number -> (message id, its confirm)
        self._pending: dict[int, tuple[str, asyncio.Future[None]]] = {}
        self._returned: set[str] = set()  # message ids the broker could not route
        self._sequence = 0
        self._ready = asyncio.Event()
        self._closing = False
        self._reconnecting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.reconnects = 0

    @property
    def consumers(self) -> int:
        return len(self._inboxes)

    async def open(self) -> None:
        """Connect and open the publish channel (raises if the broker refuses)."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()

        def settle(_: Any, error: BaseException | None = None) -> None:
            if opened.done():
                return
            if error is None:
                opened.set_result(None)
            else:
                opened.set_exception(error)

        connection = AsyncioConnection(
            self._params, settle, settle, self._on_connection_closed, custom_ioloop=loop
        )
        await asyncio.wait_for(opened, RPC_SECONDS)
        self._connection = connection
        await self._open_publisher()
        for inbox in self._inboxes:
            await self._open_consumer(inbox)
        self._ready.set()

    def attach(self, inbox: Inbox) -> None:
        """Host a provider: ``open`` (or ``start_consumer``, if open) consumes into ``inbox``."""
        self._inboxes.append(inbox)

    async def start_consumer(self, inbox: Inbox) -> None:
        """Consume the tasks queue into an attached ``inbox``, on a channel of its own."""
        await self._open_consumer(inbox)

    async def _channel(self) -> Channel:
        connection = self._connection
        if connection is None or not connection.is_open:
            raise pika.exceptions.ConnectionWrongStateError("not connected")
        channel: Channel = await _rpc(lambda done: connection.channel(on_open_callback=done))
        return channel

    async def _open_consumer(self, inbox: Inbox) -> None:
        channel = await self._channel()
        channel.add_on_close_callback(lambda ch, why: self._on_consumer_closed(inbox, why))
        await _rpc(lambda done: channel.basic_qos(prefetch_count=1, callback=done))

        def on_message(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
            inbox.put_nowait(Delivery(ch, method.delivery_tag, body, properties.type))

        await _rpc(lambda done: channel.basic_consume(self._queue, on_message, callback=done))

    async def _open_publisher(self) -> None:
        channel = await self._channel()
        channel.add_on_close_callback(self._on_publisher_closed)
        channel.add_on_return_callback(self._on_return)
        await _rpc(lambda done: channel.confirm_delivery(self._on_confirm, callback=done))
        self._sequence = 0
        self._publisher = channel

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> None:
        """Publish (mandatory) and wait for the broker's confirm."""
        await self._ready.wait()
        channel = self._publisher
        if channel is None or not channel.is_open:
            raise PublishFailed("no channel")
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except AMQPError as exc:
            raise PublishFailed("channel closed", repr(exc)) from exc
        self._sequence += 1
        self._pending[self._sequence] = (str(properties.message_id), confirmed)
        await confirmed

    # --- broker callbacks -------------------------------------------------------------------
    def _on_return(self, _: Channel, method: Any, properties: Any, body: bytes) -> None:
        self._returned.add(str(properties.message_id))  # its confirm follows

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            tags = [tag for tag in self._pending if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            message_id, future = self._pending.pop(tag, ("", None))
            if future is None or future.done():
                continue
            if not acked:
                future.set_exception(PublishFailed("nacked"))
            elif message_id in self._returned:  # a basic.return comes before its confirm
                self._returned.discard(message_id)
                future.set_exception(PublishFailed("unroutable"))
            else:
                future.set_result(None)

    def _fail_pending(self, reason: str, detail: str) -> None:
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(PublishFailed(reason, detail))

    def _in_background(self, work: Callable[[], Any], what: str) -> None:
        """Run ``work()`` (a coroutine) later; log instead of raising if it fails."""

        async def run() -> None:
            try:
                await work()
            except (AMQPError, OSError, TimeoutError) as exc:
                log.warning("%s failed: %r", what, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_publisher_closed(self, _: Channel, reason: BaseException) -> None:
        self._publisher = None
        self._fail_pending("channel closed", repr(reason))
        if self._connection is not None and self._connection.is_open and not self._closing:
            self._in_background(self._open_publisher, "re-opening the publish channel")

    def _on_consumer_closed(self, inbox: Inbox, reason: BaseException) -> None:
        connection = self._connection
        if connection is not None and connection.is_open and not self._closing:
            log.warning("consumer channel closed (%r); opening another", reason)
            self._in_background(lambda: self._open_consumer(inbox), "re-opening a consumer")

    def _on_connection_closed(self, _: Any, reason: BaseException) -> None:
        self._ready.clear()
        self._connection = self._publisher = None
        self._fail_pending("connection lost", repr(reason))
        if not self._closing and self._reconnecting is None:
            log.warning("broker connection lost (%r); reconnecting", reason)
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.5
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self.open()
                self.reconnects += 1
                break
            except (AMQPError, OSError, TimeoutError) as exc:
                log.warning("reconnecting failed (%r); retrying in %.1f s", exc, delay)
                self._abort()
                delay = min(2 * delay, RECONNECT_MAX_SECONDS)
        self._reconnecting = None

    def _abort(self) -> None:
        """Drop a half-opened connection."""
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(AMQPError):
                connection.close()

    async def close(self) -> None:
        self._closing = True
        for task in [self._reconnecting, *self._tasks]:
            if task is not None:
                task.cancel()
        connection = self._connection
        if connection is None or connection.is_closed:
            return
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_closed(*_: Any) -> None:
            if not closed.done():
                closed.set_result(None)

        connection.add_on_close_callback(on_closed)
        with contextlib.suppress(AMQPError):
            connection.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed, 10)
