"""The real services tests run against: where Postgres and RabbitMQ are, and the API in a thread.

``fresh_database`` and ``fresh_vhost`` make a test's own database and vhost (with
``daig_cli.local_infra``, as every local cluster does) and remove them afterwards.
``ApiServer`` serves the real API under uvicorn in a background thread; ``module_api_server``
gives one on its own database, vhost and blob directory (for a test module or a session of
GUI tests).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from daig.settings import Settings
from daig_cli.local_infra import Database, Vhost, throwaway, unique_name
from daig_cli.processes import free_port
from tests.helpers.waiting import wait_until

PG_ADMIN_URL = os.environ.get("DAIG_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
AMQP_HOST = os.environ.get("DAIG_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"


def fresh_database() -> AbstractContextManager[str]:
    """A fresh, migrated database of its own on the test Postgres; dropped afterwards."""
    return throwaway(Database.named(PG_ADMIN_URL, unique_name("daig_test")))


def fresh_vhost() -> AbstractContextManager[str]:
    """A vhost of its own on the test RabbitMQ (its AMQP URL); deleted afterwards, with the
    provider broker users the API made for it."""
    return throwaway(Vhost.named(AMQP_HOST, unique_name("daig_test")))


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
    with fresh_database() as database_url, fresh_vhost() as amqp_url:
        settings = Settings(
            database_url=database_url,
            amqp_url=amqp_url,
            blob_url=(tmp_path_factory.mktemp("shared-blobs") / "blobs").as_uri(),
            public_api_url="http://127.0.0.1:1",
            secret_key=TEST_SECRET,
            signups_per_ip=10_000,  # a module's users all sign up from 127.0.0.1
            replication=False,  # on in the tests of replication
        ).model_copy(update=overrides)
        with ApiServer(settings) as server:
            yield server
