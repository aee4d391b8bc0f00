"""Agents of one account starting together all get broker credentials.

RabbitMQ answers one of two simultaneous PUTs creating the same user with 400
``user_already_exists``; the API must not turn that into a 503 (seen in CI: the second of
two providers started at once exited with "cannot issue broker credentials").
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from daig.settings import Settings
from daig_api.broker_accounts import ensure_provider_account, forget_provider_accounts
from daig_cli.rabbitmqctl import rabbitmqctl


def test_simultaneous_requests_for_one_account_all_succeed(amqp_url: str) -> None:
    vhost = f"daig_test_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    settings = Settings(amqp_url=f"{amqp_url.rsplit('/', 1)[0]}/{vhost}")
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for user_id in range(1, 11):  # a fresh user each time: the race is on creation
                accounts = list(pool.map(ensure_provider_account, [settings] * 8, [user_id] * 8))
                assert {a.username for a in accounts} == {f"daig-provider-{user_id}@{vhost}"}
                assert len({a.password for a in accounts}) == 1
    finally:
        rabbitmqctl("delete_vhost", vhost, check=False)
        forget_provider_accounts(settings, vhost)
