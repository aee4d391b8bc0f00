"""Providers' own broker accounts, kept in RabbitMQ through its management HTTP API.

Every DAIG account gets one RabbitMQ user on the API's vhost (``provider_broker_user``) that
may consume the tasks queue and publish to the results exchange, and nothing else
(``PROVIDER_PERMISSIONS``): no declaring, deleting or reading anything else. Its password is
an HMAC of ``DAIG_SECRET_KEY`` and the user id, so repeated requests, several API replicas and
several agents of one account all agree without storing it, and rotating the secret rotates
every password (each on the account's next request). Creating the user and its permissions
are PUTs, so ensuring an account is idempotent.

Nothing falls back to the server's own credentials: if the management API cannot be reached,
``BrokerAccountsUnavailable`` says so and the route answers 503. The management API's client
is shared with the scheduler (``daig.management``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import asdict, dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from daig.management import ManagementUnavailable, management
from daig.settings import Settings
from daig.topology import PROVIDER_PERMISSIONS, provider_broker_user

log = logging.getLogger(__name__)


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
    try:
        with management(settings) as api:
            api.put(user_path, {"password": password, "tags": ""})
            api.put(permissions_path, asdict(PROVIDER_PERMISSIONS))
    except ManagementUnavailable as exc:
        raise BrokerAccountsUnavailable(str(exc)) from exc
    return ProviderBroker(username, password, provider_amqp_url(settings, username, password))


def forget_provider_accounts(settings: Settings, vhost: str) -> int:
    """Delete every provider broker user made for ``vhost`` (after the vhost itself is gone).

    For throw-away installations (benchmarks, screenshots): deleting a vhost in RabbitMQ
    leaves its users behind. Returns how many were deleted; quietly 0 without a management API.
    """
    suffix = "@" + vhost
    deleted = 0
    try:
        with management(settings) as api:
            for user in api.get("/api/users"):
                name = str(user["name"])
                if name.startswith("daig-provider-") and name.endswith(suffix):
                    api.delete_user(name)
                    deleted += 1
    except (ManagementUnavailable, TypeError, KeyError):
        pass
    return deleted
