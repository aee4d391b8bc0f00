"""Throw-away infrastructure on the local Postgres and RabbitMQ, and checks that both are up.

``Database`` is one Postgres database (created and migrated, later dropped); ``Vhost`` one
RabbitMQ virtual host with permissions for the URL's user (later deleted, with the provider
broker users the API made for it, which RabbitMQ would otherwise keep); ``throwaway`` holds
either for the length of a ``with`` block. ``LocalCluster``, the test fixtures, benchmarks
and scripts all build theirs with these. ``pg_ctlcluster`` stops and starts the local
Postgres for fault injection.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy.engine import make_url

from daig_cli.output import console
from daig_cli.rabbitmqctl import rabbitmqctl


def unique_name(prefix: str) -> str:
    """A database or vhost name no other run uses: ``<prefix>_<12 hex digits>``."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Database:
    """A Postgres database that this run creates, migrates and drops."""

    url: str

    @classmethod
    def named(cls, server_url: str, name: str) -> Database:
        """Database ``name`` on the server of ``server_url``."""
        return cls(make_url(server_url).set(database=name).render_as_string(hide_password=False))

    @property
    def name(self) -> str:
        return str(make_url(self.url).database)

    def create(self, *, replace: bool = False) -> None:
        """Create it and apply every migration; ``replace`` drops one of that name first."""
        from daig.db.migrate import upgrade

        if replace:
            self.drop()
        upgrade(self.url)

    def drop(self) -> None:
        from daig.db.migrate import drop_database

        drop_database(self.url)


@dataclass(frozen=True)
class Vhost:
    """A RabbitMQ virtual host that this run creates and deletes (``url`` points into it).

    Made with ``rabbitmqctl`` (this machine's broker), or with ``management`` through
    RabbitMQ's management HTTP API as the settings' admin user (any broker the API can use;
    no Erlang cookie needed, e.g. for ``daig demo``).
    """

    url: str
    management: bool = False

    @classmethod
    def named(cls, server_url: str, name: str, *, management: bool = False) -> Vhost:
        """Vhost ``name`` on the broker of ``server_url`` (as that URL's user)."""
        path = "/" + quote(name, safe="")
        return cls(urlsplit(server_url)._replace(path=path).geturl(), management)

    @property
    def name(self) -> str:
        return unquote(urlsplit(self.url).path.lstrip("/"))

    def create(self, *, replace: bool = False) -> None:
        """Add the vhost and give the URL's user every permission on it."""
        user = unquote(urlsplit(self.url).username or "guest")
        if self.management:
            vhost = quote(self.name, safe="")
            if replace:
                self._manage("DELETE", f"/api/vhosts/{vhost}")
            self._manage("PUT", f"/api/vhosts/{vhost}", {})
            everything = {"configure": ".*", "write": ".*", "read": ".*"}
            self._manage("PUT", f"/api/permissions/{vhost}/{quote(user, safe='')}", everything)
            return
        if replace:
            rabbitmqctl("delete_vhost", self.name, check=False)
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, user, ".*", ".*", ".*")

    def drop(self) -> None:
        """Delete the vhost, then the provider broker users made for it; quiet if gone."""
        from daig.settings import Settings
        from daig_api.broker_accounts import forget_provider_accounts

        if self.management:
            self._manage("DELETE", f"/api/vhosts/{quote(self.name, safe='')}")
        else:
            rabbitmqctl("delete_vhost", self.name, check=False)
        forget_provider_accounts(Settings(amqp_url=self.url), self.name)

    def _manage(self, method: str, path: str, body: dict[str, str] | None = None) -> None:
        """One call to the management API; a DELETE of what is gone is fine, else raise."""
        import httpx

        from daig.settings import Settings

        settings = Settings(amqp_url=self.url)
        response = httpx.request(
            method,
            settings.management_url + path,
            json=body,
            auth=settings.management_credentials,
            timeout=30,
        )
        if response.status_code >= 300 and not (method == "DELETE" and response.is_client_error):
            raise RuntimeError(
                f"RabbitMQ's management API answered HTTP {response.status_code} to "
                f"{method} {path}: {response.text[:300]}"
            )


class Throwaway(Protocol):
    url: str

    def create(self, *, replace: bool = False) -> None: ...

    def drop(self) -> None: ...


@contextmanager
def throwaway(resource: Throwaway) -> Iterator[str]:
    """Create ``resource`` (a ``Database`` or ``Vhost``), yield its URL, then remove it."""
    resource.create()
    try:
        yield resource.url
    finally:
        resource.drop()


def pg_ctlcluster(action: str, timeout: float = 180.0) -> None:
    """``start`` or ``stop`` this machine's Postgres cluster (its newest version's ``main``),
    as the fault tests and the chaos benchmark do."""
    version = sorted(path.name for path in Path("/etc/postgresql").iterdir())[-1]
    argv = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
    subprocess.run(argv, check=True, capture_output=True, timeout=timeout)


def services_reachable(database_url: str, amqp_url: str) -> bool:
    """True if Postgres, RabbitMQ and its management API answer; else say how to start them."""
    from sqlalchemy import create_engine, text

    from daig.broker import connect

    try:
        engine = create_engine(make_url(database_url).set(database="postgres"))
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        console.print(
            f"[red]cannot reach PostgreSQL ({str(exc).splitlines()[0]}).[/]\n"
            "Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
            "main start  (or set DAIG_DATABASE_URL)"
        )
        return False
    try:
        connect(amqp_url, heartbeat=0).close()
    except Exception as exc:
        console.print(
            f"[red]cannot reach RabbitMQ ({exc or type(exc).__name__}).[/]\n"
            "Start it: rabbitmq-server -detached  (or set DAIG_AMQP_URL)"
        )
        return False
    return _management_reachable()


def _management_reachable() -> bool:
    """Providers get their own broker users through RabbitMQ's management API."""
    import httpx

    from daig.settings import Settings

    settings = Settings()
    try:
        response = httpx.get(
            f"{settings.management_url}/api/whoami", auth=settings.management_credentials, timeout=5
        )
        if response.status_code == 200:
            return True
        problem = (
            f"it answered HTTP {response.status_code}; check DAIG_RABBITMQ_ADMIN_USER/PASSWORD"
        )
    except httpx.TransportError as exc:
        problem = f"{exc}; enable it: rabbitmq-plugins enable rabbitmq_management"
    console.print(
        f"[red]cannot use RabbitMQ's management API at {settings.management_url} "
        f"({problem}).[/] DAIG gives each provider its own broker user through it."
    )
    return False
