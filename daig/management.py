"""RabbitMQ's management HTTP API, as DAIG's server roles use it.

The API creates each account's broker user through it (``daig_api.broker_accounts``); the
scheduler reads who consumes the tasks queue and revokes a volunteer's broker user through it
(``daig_scheduler.blackholes``). One client, one place that turns its failures into a sentence
for the operator (``ManagementUnavailable``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from daig.settings import Settings

TIMEOUT_SECONDS = 10.0
# What the channels listing is asked for: RabbitMQ leaves every other field out.
_CHANNEL_COLUMNS = (
    "name,user,vhost,prefetch_count,consumer_count,connection_details.name,"
    "message_stats.ack,message_stats.deliver_no_ack,message_stats.get_no_ack"
)


class ManagementUnavailable(Exception):
    """The management API could not be used; the message says why, for the operator."""


@dataclass(frozen=True)
class ChannelStats:
    """One AMQP channel's cumulative counters, as the management API last collected them.

    ``taken`` counts the messages this channel removed from its queues: acknowledged, or
    delivered without acknowledgement. Messages given back (nack, reject with requeue) are not
    taken. RabbitMQ refreshes these every ``collect_statistics_interval`` (5 s by default).
    """

    name: str
    user: str
    connection: str
    prefetch: int
    consumers: int
    taken: int


class Management:
    """A session with the management API (use ``management(settings)``)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def put(self, path: str, body: dict[str, Any]) -> None:
        """PUT ``body`` (RabbitMQ's PUTs create or update, so they are idempotent)."""
        # Two PUTs creating the same user at once (two agents of one account starting
        # together): RabbitMQ answers the loser 400 user_already_exists instead of updating.
        # The user exists now, so the same PUT again updates it.
        for _ in range(3):
            response = self._call("PUT", path, json=body, allow=(400,))
            if response.status_code != 400 or "user_already_exists" not in response.text:
                break
        self._check("PUT", path, response)

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = self._call("GET", path, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise ManagementUnavailable(f"{self._where} answered GET {path} with no JSON") from exc

    def delete(self, path: str, headers: dict[str, str] | None = None) -> bool:
        """DELETE ``path``; False if it was already gone (404)."""
        response = self._call("DELETE", path, headers=headers, allow=(404,))
        return response.status_code != 404

    def channels(self, vhost: str) -> list[ChannelStats]:
        """Every channel open on ``vhost`` now, with its counters."""
        rows = self.get(
            f"/api/vhosts/{quote(vhost, safe='')}/channels", {"columns": _CHANNEL_COLUMNS}
        )
        return [_channel(row) for row in rows]

    def delete_user(self, username: str) -> bool:
        """Delete a broker user (its permissions go with it); False if there was none."""
        return self.delete(f"/api/users/{quote(username, safe='')}")

    def close_connections(self, username: str, reason: str) -> int:
        """Close every connection of ``username``; how many were open."""
        rows = self.get("/api/connections", {"columns": "name,user"})
        names = [str(row["name"]) for row in rows if row.get("user") == username]
        for name in names:
            self.delete(f"/api/connections/{quote(name, safe='')}", {"X-Reason": reason})
        return len(names)

    @property
    def _where(self) -> str:
        return f"RabbitMQ's management API at {self._http.base_url}"

    def _call(
        self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """One request; failures raise ``ManagementUnavailable`` except statuses in ``allow``."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ManagementUnavailable(
                f"{self._where} is unreachable ({exc or type(exc).__name__}); enable the "
                "rabbitmq_management plugin (scripts/setup.sh does) and make it reachable, or "
                "set DAIG_RABBITMQ_MANAGEMENT_URL"
            ) from exc
        if response.status_code not in allow:
            self._check(method, path, response)
        return response

    def _check(self, method: str, path: str, response: httpx.Response) -> None:
        if response.status_code == 401:
            raise ManagementUnavailable(
                f"{self._where} refused the admin credentials (set DAIG_RABBITMQ_ADMIN_USER "
                "and DAIG_RABBITMQ_ADMIN_PASSWORD to an administrator's)"
            )
        if response.status_code >= 300:
            raise ManagementUnavailable(
                f"{self._where} answered HTTP {response.status_code} to {method} {path}: "
                f"{response.text[:300]}"
            )


@contextmanager
def management(settings: Settings) -> Iterator[Management]:
    """A management API session with the settings' URL and admin credentials."""
    with httpx.Client(
        base_url=settings.management_url,
        auth=settings.management_credentials,
        timeout=TIMEOUT_SECONDS,
    ) as http:
        yield Management(http)


def _channel(row: dict[str, Any]) -> ChannelStats:
    # A channel that has moved no message yet has "message_stats": [] (or none at all).
    stats = row.get("message_stats") or {}
    taken = sum(int(stats.get(key, 0)) for key in ("ack", "deliver_no_ack", "get_no_ack"))
    return ChannelStats(
        name=str(row["name"]),
        user=str(row.get("user", "")),
        connection=str((row.get("connection_details") or {}).get("name", "")),
        prefetch=int(row.get("prefetch_count", 0)),
        consumers=int(row.get("consumer_count", 0)),
        taken=taken,
    )
