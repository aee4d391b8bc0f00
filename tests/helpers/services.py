"""The real services tests run against: where Postgres and RabbitMQ are, and the API in a thread.

``ApiServer`` serves the real API under uvicorn in a background thread; ``module_api_server``
gives one on its own freshly migrated database, vhost and blob directory (for a test module
or a session of GUI tests) and removes them afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from daig.settings import Settings
from tests.helpers.waiting import wait_until

PG_ADMIN_URL = os.environ.get("DAIG_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
AMQP_HOST = os.environ.get("DAIG_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


class ApiServer:
    """The real API served by uvicorn in a background thread."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from daig_api.__main__ import KEEP_ALIVE_SECONDS
        from daig_api.main import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings.model_copy(update={"public_api_url": self.url})
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, what="API server start")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def module_api_server(
    tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> Iterator[ApiServer]:
    """An API server on a fresh database, vhost and blob directory; ``overrides`` settings."""
    from daig.db.migrate import drop_database, upgrade

    name = f"daig_test_{uuid.uuid4().hex[:12]}"
    database_url = f"{PG_ADMIN_URL}/{name}"
    upgrade(database_url)
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    settings = Settings(
        database_url=database_url,
        amqp_url=f"{AMQP_HOST}/{name}",
        blob_url=(tmp_path_factory.mktemp("shared-blobs") / "blobs").as_uri(),
        public_api_url="http://127.0.0.1:1",
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        signups_per_ip=10_000,  # a module's users all sign up from 127.0.0.1
        replication=False,  # on in the tests of replication
    ).model_copy(update=overrides)
    try:
        with ApiServer(settings) as server:
            yield server
    finally:
        rabbitmqctl("delete_vhost", name)
        drop_database(database_url)
