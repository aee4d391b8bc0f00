"""Throw-away installations (benchmarks, screenshots) delete their vhost's provider users.

RabbitMQ keeps users when their vhost is deleted, so without this every benchmark run left
one broker user per provider account behind.
"""

from __future__ import annotations

import uuid

import httpx

from daig.settings import Settings
from daig_api.broker_accounts import ensure_provider_account, forget_provider_accounts
from daig_cli.rabbitmqctl import rabbitmqctl


def _users(settings: Settings) -> set[str]:
    with httpx.Client(
        base_url=settings.management_url, auth=settings.management_credentials
    ) as http:
        return {str(user["name"]) for user in http.get("/api/users").json()}


def test_only_the_given_vhosts_provider_users_are_deleted(amqp_url: str) -> None:
    kept = Settings(amqp_url=amqp_url)
    gone_vhost = f"daig_test_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", gone_vhost)
    gone = Settings(amqp_url=f"{amqp_url.rsplit('/', 1)[0]}/{gone_vhost}")
    try:
        doomed = {ensure_provider_account(gone, n).username for n in (1, 2)}
        survivor = ensure_provider_account(kept, 1).username
        assert doomed | {survivor} <= _users(kept)
    finally:
        rabbitmqctl("delete_vhost", gone_vhost)

    assert forget_provider_accounts(gone, gone_vhost) == 2
    users = _users(kept)
    assert not doomed & users
    assert survivor in users
    assert "guest" in users
    assert forget_provider_accounts(gone, gone_vhost) == 0  # nothing left to delete
