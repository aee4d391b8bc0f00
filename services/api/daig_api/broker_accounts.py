"""Providers' own broker accounts, kept in RabbitMQ through its management HTTP API.

Every DAIG account gets one RabbitMQ user on the API's vhost (``provider_broker_user``) that
may consume the tasks queue and publish to the results exchange, and nothing else
(``PROVIDER_PERMISSIONS``): no declaring, deleting or reading anything else. Its password is
an HMAC of ``DAIG_SECRET_KEY`` and the user id, so repeated requests, several API replicas and
several agents of one account all agree without storing it, and rotating the secret rotates
every password (each on the account's next request). Creating the user and its permissions
are PUTs, so ensuring an account is idempotent.

Nothing falls back to the server's own credentials: if the management API cannot be reached,
``BrokerAccountsUnavailable`` says so and the route answers 503.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from daig.settings import Settings
from daig.topology import PROVIDER_PERMISSIONS, provider_broker_user

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0


class BrokerAccountsUnavailable(Exception):
    """The management API could not be used; the message says why, for the operator."""


@dataclass(frozen=True)
class ProviderBroker:
    """A provider's broker credentials and the AMQP URL that carries them."""

    username: str
    password: str
    amqp_url: str


def provider_password(secret_key: str, user_id: int) -> str:
    """The broker password of account ``user_id``: derived, never stored."""
    label = f"daig provider broker password {user_id}".encode()
    return hmac.new(secret_key.encode(), label, hashlib.sha256).hexdigest()


def provider_amqp_url(settings: Settings, username: str, password: str) -> str:
    """``DAIG_PUBLIC_AMQP_URL`` (or ``DAIG_AMQP_URL``) with the provider's credentials.

    Scheme, host, port and query (e.g. TLS options) come from the public URL; the vhost is
    the API's own, the only one where the provider's user has permissions.
    """
    parts = urlsplit(settings.provider_amqp_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    address = f"{host}:{parts.port}" if parts.port else host
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{address}"
    path = "/" + quote(settings.amqp_vhost, safe="")
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def ensure_provider_account(settings: Settings, user_id: int) -> ProviderBroker:
    """Create or update account ``user_id``'s broker user and its permissions (idempotent)."""
    username = provider_broker_user(user_id, settings.amqp_vhost)
    password = provider_password(settings.secret_key, user_id)
    user_path = f"/api/users/{quote(username, safe='')}"
    permissions_path = (
        f"/api/permissions/{quote(settings.amqp_vhost, safe='')}/{quote(username, safe='')}"
    )
    with httpx.Client(
        base_url=settings.management_url,
        auth=settings.management_credentials,
        timeout=TIMEOUT_SECONDS,
    ) as http:
        _put(http, user_path, {"password": password, "tags": ""})
        _put(http, permissions_path, asdict(PROVIDER_PERMISSIONS))
    return ProviderBroker(username, password, provider_amqp_url(settings, username, password))


def _put(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    where = f"RabbitMQ's management API at {http.base_url}"
    try:
        response = http.put(path, json=body)
        # Two PUTs creating the same user at once (two agents of one account starting
        # together): RabbitMQ answers the loser 400 user_already_exists instead of updating.
        # The user exists now, so the same PUT again updates it.
        for _ in range(3):
            if response.status_code != 400 or "user_already_exists" not in response.text:
                break
            response = http.put(path, json=body)
    except httpx.TransportError as exc:
        raise BrokerAccountsUnavailable(
            f"{where} is unreachable ({exc or type(exc).__name__}); enable the "
            "rabbitmq_management plugin (scripts/setup.sh does) and make it reachable from "
            "the API, or set DAIG_RABBITMQ_MANAGEMENT_URL"
        ) from exc
    if response.status_code == 401:
        raise BrokerAccountsUnavailable(
            f"{where} refused the admin credentials (set DAIG_RABBITMQ_ADMIN_USER and "
            "DAIG_RABBITMQ_ADMIN_PASSWORD to an administrator's)"
        )
    if response.status_code >= 300:
        raise BrokerAccountsUnavailable(
            f"{where} answered HTTP {response.status_code} to PUT {path}: {response.text[:300]}"
        )


def forget_provider_accounts(settings: Settings, vhost: str) -> int:
    """Delete every provider broker user made for ``vhost`` (after the vhost itself is gone).

    For throw-away installations (benchmarks, screenshots): deleting a vhost in RabbitMQ
    leaves its users behind. Returns how many were deleted; quietly 0 without a management API.
    """
    suffix = "@" + vhost
    deleted = 0
    try:
        with httpx.Client(
            base_url=settings.management_url,
            auth=settings.management_credentials,
            timeout=TIMEOUT_SECONDS,
        ) as http:
            for user in http.get("/api/users").json():
                name = str(user["name"])
                if name.startswith("daig-provider-") and name.endswith(suffix):
                    http.delete(f"/api/users/{quote(name, safe='')}")
                    deleted += 1
    except (httpx.HTTPError, ValueError, TypeError, KeyError):
        pass
    return deleted
