"""RabbitMQ exchanges and queues, declared once here and imported by every side.

All queues are durable quorum queues with a delivery limit, dead-lettering into
``daig.dead`` with the reason recorded by the broker (``x-first-death-reason``).

Results are partitioned by project: the ``daig.results`` exchange routes ``result.<n>`` to the
queue ``daig.results.<n>``, and a project's results always go to partition
``project_id mod partitions`` (the API puts the routing key in each claim grant). Partition
queues have a single active consumer, so each partition -- and so each project -- is recorded
by one aggregator at a time, and a waiting aggregator takes over when the active one dies.

Servers connect as an administrator and declare the topology. Each DAIG account's provider
agents connect as that account's own broker user (``provider_broker_user``), which may only
consume tasks and publish results (``PROVIDER_PERMISSIONS``) and must stamp its name into
every result's ``user_id`` property, which RabbitMQ verifies.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

DEAD_LETTER_EXCHANGE = "daig.dead"
DEAD_LETTER_QUEUE = "daig.dead"
DELIVERY_LIMIT = 20
DEFAULT_RESULT_PARTITIONS = 16


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
RESULTS_EXCHANGE = "daig.results"
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

FIXED_ROUTES = (TASKS, EVENTS, DEAD)


@dataclass(frozen=True)
class ResultPartitions:
    """The partitions of the results: which queue and routing key serve which project."""

    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"there must be at least one result partition, not {self.count}")

    def of(self, project_id: uuid.UUID) -> int:
        """The partition of a project (uuid4s are random, so projects spread evenly)."""
        return project_id.int % self.count

    def route(self, partition: int) -> Route:
        if not 0 <= partition < self.count:
            raise ValueError(f"result partition {partition} is outside 0..{self.count - 1}")
        key = f"result.{partition}"
        arguments = _quorum() | {"x-single-active-consumer": True}
        return Route(RESULTS_EXCHANGE, "direct", f"daig.results.{partition}", key, key, arguments)

    def route_for(self, project_id: uuid.UUID) -> Route:
        return self.route(self.of(project_id))

    def routes(self) -> tuple[Route, ...]:
        return tuple(self.route(partition) for partition in range(self.count))


def result_route(routing_key: str) -> Route:
    """Where a provider publishes a result: the results exchange with its grant's key."""
    return Route(RESULTS_EXCHANGE, "direct", "", routing_key, routing_key)


def all_routes(partitions: int) -> tuple[Route, ...]:
    return FIXED_ROUTES + ResultPartitions(partitions).routes()


@dataclass(frozen=True)
class Permissions:
    """A RabbitMQ user's permissions on one vhost: regular expressions over resource names."""

    configure: str
    write: str
    read: str


# Providers declare nothing, publish only to the results exchange, consume only the tasks queue.
PROVIDER_PERMISSIONS = Permissions(
    configure="^$",
    write=f"^{re.escape(RESULTS_EXCHANGE)}$",
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


def provider_of_broker_user(username: str, vhost: str = "/") -> int | None:
    """The DAIG account whose broker user on ``vhost`` is ``username`` (None: not a provider's)."""
    suffix = "" if vhost == "/" else f"@{vhost}"
    if not username.endswith(suffix):
        return None
    found = re.fullmatch(r"daig-provider-([0-9]+)", username[: len(username) - len(suffix)])
    return int(found.group(1)) if found else None


def declare(channel: Any, partitions: int = DEFAULT_RESULT_PARTITIONS) -> None:
    """Declare every exchange, queue and binding (idempotent)."""
    for route in all_routes(partitions):
        channel.exchange_declare(route.exchange, exchange_type=route.exchange_type, durable=True)
        channel.queue_declare(route.queue, durable=True, arguments=route.arguments)
        channel.queue_bind(route.queue, route.exchange, routing_key=route.binding_key)
