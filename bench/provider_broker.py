"""A provider's own broker connection, made from the credentials ``/v1/provider/config`` gives.

Benchmarks and tests use it to act as a provider agent does on the broker (or, in tests, as a
malicious one would): consume from the tasks queue and publish results stamped with its broker
user, or try anything else and be refused. It lives in ``bench`` because benchmarks import
nothing from ``tests``, while tests may import from ``bench`` (they test it too).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel

from daig.broker import connect, publish_on
from daig.client import DaigClient
from daig.contract.http import ProviderConfig
from daig.contract.messages import Message
from daig.topology import DEFAULT_RESULT_PARTITIONS, ResultPartitions, Route

PARTITIONS = ResultPartitions(DEFAULT_RESULT_PARTITIONS)  # what the test servers use


class ProviderBroker:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.user = config.broker_user
        self.connection: pika.BlockingConnection = connect(config.amqp_url, heartbeat=0)

    def channel(self) -> BlockingChannel:
        """A fresh confirming channel (a refused operation closes the channel it ran on)."""
        channel = self.connection.channel()
        channel.confirm_delivery()
        return channel

    def publish(self, message: Message, route: Route | None = None) -> None:
        """Publish as the agent does: confirmed, ``user_id`` set to our own broker user, to
        the message's project's result partition unless ``route`` says otherwise."""
        publish_on(self.channel(), route or _result_route(message), message, user_id=self.user)

    def publish_as(self, message: Message, user_id: str | None, route: Route | None = None) -> None:
        """Publish with any ``user_id`` (or none): the broker decides whether it is allowed."""
        publish_on(self.channel(), route or _result_route(message), message, user_id=user_id)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@contextmanager
def provider_broker(client: DaigClient) -> Iterator[ProviderBroker]:
    """Connect with the broker credentials the API hands ``client``'s account."""
    broker = ProviderBroker(client.provider_config())
    try:
        yield broker
    finally:
        broker.close()


def _result_route(message: Message) -> Route:
    return PARTITIONS.route_for(message.project_id)
