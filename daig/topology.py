"""RabbitMQ exchanges and queues, declared once here and imported by every side.

All queues are durable quorum queues with a delivery limit, dead-lettering into
``daig.dead`` with the reason recorded by the broker (``x-first-death-reason``).

Servers connect as an administrator and declare the topology. Each DAIG account's provider
agents connect as that account's own broker user (``provider_broker_user``), which may only
consume tasks and publish results (``PROVIDER_PERMISSIONS``) and must stamp its name into
every result's ``user_id`` property, which RabbitMQ verifies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEAD_LETTER_EXCHANGE = "daig.dead"
DEAD_LETTER_QUEUE = "daig.dead"
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Route:
    exchange: str
    exchange_type: str
    queue: str
    binding_key: str
    publish_key: str
    arguments: dict[str, Any] = field(default_factory=dict)


def _quorum() -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
    }


TASKS = Route("daig.tasks", "direct", "daig.tasks", "task", "task", _quorum())
RESULTS = Route("daig.results", "direct", "daig.results", "result", "result", _quorum())
EVENTS = Route("daig.events", "topic", "daig.scheduler.events", "#", "event", _quorum())
# Dead letters are only recorded; one that cannot even be recorded is dropped after the limit.
DEAD = Route(
    DEAD_LETTER_EXCHANGE,
    "fanout",
    DEAD_LETTER_QUEUE,
    "",
    "",
    {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT},
)

ALL_ROUTES = (TASKS, RESULTS, EVENTS, DEAD)


@dataclass(frozen=True)
class Permissions:
    """A RabbitMQ user's permissions on one vhost: regular expressions over resource names."""

    configure: str
    write: str
    read: str


# Providers declare nothing, publish only to the results exchange, consume only the tasks queue.
PROVIDER_PERMISSIONS = Permissions(
    configure="^$",
    write=f"^{re.escape(RESULTS.exchange)}$",
    read=f"^{re.escape(TASKS.queue)}$",
)


def provider_broker_user(user_id: int, vhost: str = "/") -> str:
    """The broker user of DAIG account ``user_id``'s provider agents on ``vhost``.

    The aggregator accepts a result only if the broker-validated ``user_id`` property of its
    message is this name for the message's ``provider_id``. Outside the default vhost the
    vhost is part of the name, so DAIG installations sharing one broker (each deriving
    passwords from its own secret) never share a user.
    """
    name = f"daig-provider-{user_id}"
    return name if vhost == "/" else f"{name}@{vhost}"


def declare(channel: Any) -> None:
    """Declare every exchange, queue and binding (idempotent)."""
    for route in ALL_ROUTES:
        channel.exchange_declare(route.exchange, exchange_type=route.exchange_type, durable=True)
        channel.queue_declare(route.queue, durable=True, arguments=route.arguments)
        channel.queue_bind(route.queue, route.exchange, routing_key=route.binding_key)
