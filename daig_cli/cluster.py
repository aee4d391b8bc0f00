"""``LocalCluster``: a DAIG installation on this machine, its ``DAIG_*`` environment and roles.

One builder serves ``daig demo``, ``daig up``, the benchmarks, the screenshot script and the
tests. ``LocalCluster.owned`` makes what a throw-away run needs (a migrated database, a vhost,
a blob directory, a free API port and public URL, a secret) and ``close`` removes it again;
``LocalCluster.existing`` runs on the operator's own ``DAIG_*`` settings (``daig up``). Either
way it starts roles by name (``python -m daig_cli <role>``, each with a log file), waits for
their ``/healthz`` and stops them in order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from daig.settings import Settings
from daig_cli.local_infra import Database, Vhost, unique_name
from daig_cli.processes import ProcessGroup, answers, free_port


@dataclass(frozen=True)
class Role:
    """What one named process of the cluster runs: ``daig <role> <args>``."""

    role: str
    args: tuple[str, ...]
    metrics_port: int | None = None
    env: tuple[tuple[str, str], ...] = ()  # e.g. the password, which must not be an argument


def settings_env(settings: Mapping[str, str]) -> dict[str, str]:
    """``{"lease_seconds": "6"}`` -> ``{"DAIG_LEASE_SECONDS": "6"}``."""
    return {f"DAIG_{key.upper()}": value for key, value in settings.items()}


class LocalCluster(ProcessGroup):
    """DAIG's roles as processes on this machine, sharing one environment (``env``)."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        database: Database | None = None,
        vhost: Vhost | None = None,
        work: Path | None = None,
        remove_work: bool = False,
    ) -> None:
        super().__init__(env, log_dir)
        self.host = host
        self.port = port or free_port()
        self.api_url = f"http://{_client_host(host)}:{self.port}"
        self.roles: dict[str, Role] = {}
        self.database, self.vhost = database, vhost
        self.work = work or log_dir
        self._remove_work = remove_work
        self._closed = False

    # --- building -------------------------------------------------------------------------------
    @classmethod
    def owned(
        cls,
        work: Path | None = None,
        *,
        prefix: str = "daig_local",
        database: str | None = None,
        database_url: str | None = None,
        vhost: str | None = None,
        amqp_url: str | None = None,
        secret: str | None = None,
        settings: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        remove_work: bool = False,
        vhost_by_management: bool = False,
    ) -> LocalCluster:
        """A cluster on resources of its own, removed by ``close``.

        The database: ``database_url`` as given (not owned), else a fresh database named
        ``database`` (replacing one of that name) or ``<prefix>_<hex>`` on the server of
        ``DAIG_DATABASE_URL``. The vhost likewise: ``amqp_url`` as given, else a fresh
        ``vhost`` or the same ``<prefix>_<hex>`` on ``DAIG_AMQP_URL``'s broker. Blobs, logs
        and caches go under ``work`` (a new temporary directory if None; deleted by ``close``
        only with ``remove_work``). ``vhost_by_management`` makes and deletes the vhost through
        RabbitMQ's management HTTP API instead of ``rabbitmqctl``. ``close`` also deletes the
        provider broker users the API made for an owned vhost. ``settings`` are further
        ``DAIG_*`` settings by field name, ``env`` any other variables; both override what is
        built here.
        """
        base = Settings()
        work = work or Path(tempfile.mkdtemp(prefix=f"{prefix.replace('_', '-')}-"))
        name = unique_name(prefix)  # the database's and the vhost's, unless named
        owned_db = owned_vhost = None
        if database_url is None:
            owned_db = Database.named(base.database_url, database or name)
            database_url = owned_db.url
        if amqp_url is None:
            owned_vhost = Vhost.named(base.amqp_url, vhost or name, management=vhost_by_management)
            amqp_url = owned_vhost.url
        port = free_port()
        built = {
            "DAIG_DATABASE_URL": database_url,
            "DAIG_AMQP_URL": amqp_url,
            "DAIG_BLOB_URL": (work / "blobs").as_uri(),
            "DAIG_PUBLIC_API_URL": f"http://127.0.0.1:{port}",
            # Every volunteer of a one-machine cluster signs up from 127.0.0.1: each account is
            # its own trust group, or no replica could be verified.
            "DAIG_SYBIL_WINDOW_SECONDS": "0",
            "XDG_CONFIG_HOME": str(work / "config"),
            "XDG_CACHE_HOME": str(work / "cache"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
        }
        if secret is not None:
            built["DAIG_SECRET_KEY"] = secret
        cluster = cls(
            built | settings_env(settings or {}) | dict(env or {}),
            work / "logs",
            port=port,
            database=owned_db,
            vhost=owned_vhost,
            work=work,
            remove_work=remove_work,
        )
        try:
            if owned_db:
                owned_db.create(replace=database is not None)
            if owned_vhost:
                owned_vhost.create(replace=vhost is not None)
        except BaseException:
            cluster.close()
            raise
        return cluster

    @classmethod
    def existing(cls, log_dir: Path, *, host: str = "127.0.0.1", port: int = 8000) -> LocalCluster:
        """A cluster on the operator's ``DAIG_*`` settings (``daig up``); ``close`` keeps them.

        Only the public API URL is filled in when unset: the local blob store's presigned
        URLs must point at the API this cluster starts.
        """
        env = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        cluster = cls(env, log_dir, host=host, port=port)
        if "DAIG_PUBLIC_API_URL" not in os.environ:
            cluster.env["DAIG_PUBLIC_API_URL"] = cluster.api_url
        return cluster

    # --- what it built --------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.env.get("DAIG_DATABASE_URL") or Settings().database_url

    @property
    def amqp_url(self) -> str:
        return self.env.get("DAIG_AMQP_URL") or Settings().amqp_url

    # --- roles ----------------------------------------------------------------------------------
    def start_role(
        self,
        name: str,
        role: str,
        *args: str,
        metrics_port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``daig <role> <args>`` as process ``name`` (its metrics on ``metrics_port``,
        ``env`` added to the cluster's environment)."""
        extra = dict(env or {})
        self.roles[name] = Role(role, args, metrics_port, tuple(extra.items()))
        if metrics_port is not None:
            extra["DAIG_METRICS_PORT"] = str(metrics_port)
        return self.start(name, role, *args, env=extra or None)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start process ``name`` again as it was started before (after a kill or stop)."""
        role = self.roles[name]
        return self.start_role(
            name, role.role, *role.args, metrics_port=role.metrics_port, env=dict(role.env)
        )

    def start_api(self, name: str = "api") -> subprocess.Popen[bytes]:
        return self.start_role(name, "api", "--host", self.host, "--port", str(self.port))

    def start_provider(
        self, name: str, user: str, password: str, *extra: str
    ) -> subprocess.Popen[bytes]:
        """A volunteer's agent logged in as ``user``, working for this cluster's API."""
        args = ("--server", self.api_url, "--user", user, *extra)
        # In the environment, not the arguments: `ps` shows every process's arguments.
        return self.start_role(name, "provider", *args, env={"DAIG_PASSWORD": password})

    def start_servers(self, *, wait: bool = True) -> None:
        """API, scheduler and aggregator; with ``wait``, until the API is healthy."""
        self.start_api()
        self.start_role("scheduler", "scheduler")
        self.start_role("aggregator", "aggregator")
        if wait:
            self.wait_healthy()

    def health_url(self, name: str) -> str | None:
        """Where process ``name`` answers ``/healthz`` (None: it serves no health check)."""
        return self._url(name, "healthz")

    def metrics_url(self, name: str) -> str | None:
        return self._url(name, "metrics")

    def _url(self, name: str, path: str) -> str | None:
        role = self.roles[name]
        if role.role == "api":
            return f"{self.api_url}/{path}"
        if role.metrics_port is not None:
            return f"http://127.0.0.1:{role.metrics_port}/{path}"
        return None

    def healthy(self, name: str) -> bool:
        url = self.health_url(name)
        return url is not None and answers(url)

    def wait_healthy(self, names: tuple[str, ...] = ("api",), timeout: float = 60.0) -> None:
        """Block until each named role answers ``/healthz``; raise if any process exits."""
        for name in names:
            url = self.health_url(name)
            if url is not None:
                self.wait_for_url(url, timeout)

    # --- clean-up -------------------------------------------------------------------------------
    def close(self, *, keep: bool = False) -> None:
        """Stop every process, then remove what this cluster made (unless ``keep``)."""
        self.stop_all()
        if keep or self._closed:
            return
        self._closed = True
        if self.database is not None:
            self.database.drop()
        if self.vhost is not None:
            self.vhost.drop()
        if self._remove_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
