"""Queue depths of the cluster's vhost from RabbitMQ's management API, whatever the queues are.

The server may partition results into several queues (``daig.results.<n>``) or add queues
later, so nothing here names a queue: every queue of the vhost is listed, and ``group``
files each under the topology route it belongs to (results queues are summed).
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from daig.settings import Settings
from daig.topology import DEAD, EVENTS, RESULTS_EXCHANGE, TASKS

# (group, queue name prefix), most specific first.
GROUPS = (
    ("tasks", TASKS.queue),
    ("results", RESULTS_EXCHANGE),  # the partition queues are daig.results.<n>
    ("events", EVENTS.queue),
    ("dead", DEAD.queue),
)


def group(queue: str) -> str:
    """The group a queue's depth is summed into: tasks, results, events, dead, or its name."""
    for name, prefix in GROUPS:
        if queue == prefix or queue.startswith(prefix + "."):
            return name
    return queue


class QueueReader:
    """``GET /api/queues/<vhost>``: (ready, unacknowledged) messages of each queue."""

    def __init__(self, amqp_url: str) -> None:
        settings = Settings(amqp_url=amqp_url)
        self._path = f"/api/queues/{quote(settings.amqp_vhost, safe='')}"
        self._http = httpx.Client(
            base_url=settings.management_url, auth=settings.management_credentials, timeout=10
        )

    def depths(self) -> dict[str, tuple[int, int]]:
        """Queue name -> (ready, unacknowledged); empty if the management API fails."""
        try:
            response = self._http.get(
                self._path, params={"columns": "name,messages_ready,messages_unacknowledged"}
            )
            response.raise_for_status()
        except httpx.HTTPError:
            return {}
        return {
            str(q["name"]): (
                int(q.get("messages_ready", 0)),
                int(q.get("messages_unacknowledged", 0)),
            )
            for q in response.json()
        }

    def grouped(self) -> dict[str, int]:
        """Ready messages per group (``group``), summed over the group's queues."""
        totals: dict[str, int] = {}
        for name, (ready, _) in self.depths().items():
            key = group(name)
            totals[key] = totals.get(key, 0) + ready
        return totals

    def close(self) -> None:
        self._http.close()
