"""Fixtures on real services: a Postgres database, a RabbitMQ vhost and an S3 server per test.

Nothing here is mocked. Each test that asks for ``database_url`` gets its own freshly migrated
database; ``amqp_url`` its own vhost; both are removed afterwards. ``s3_endpoint`` is moto's
standalone S3 server, started once per session as a separate process on loopback.

Fixtures that tests in several directories share but that do not belong to every test (the
end-to-end ``cluster``) live in the plugin ``tests.helpers.fixtures``, registered here; helper
functions and classes live in ``tests/helpers`` modules. Nothing imports a conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

# The helpers assert too: pytest rewrites their asserts as it did when they were in conftests.
pytest.register_assert_rewrite("tests.helpers")

from daig.settings import Settings  # noqa: E402
from tests.helpers.services import (  # noqa: E402
    AMQP_HOST,
    PG_ADMIN_URL,
    ApiServer,
    free_port,
    rabbitmqctl,
)
from tests.helpers.waiting import wait_until  # noqa: E402

pytest_plugins = ["tests.helpers.fixtures"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def database_url() -> Iterator[str]:
    from daig.db.migrate import drop_database, upgrade

    url = f"{PG_ADMIN_URL}/daig_test_{uuid.uuid4().hex[:12]}"
    upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    vhost = f"daig_test_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{AMQP_HOST}/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session", autouse=True)
def _forget_provider_broker_users() -> Iterator[None]:
    """After the session, delete the provider broker users the API made for test vhosts.

    Only users of vhosts that are gone: other test runs sharing this broker keep theirs.
    """
    yield
    settings = Settings(amqp_url=f"{AMQP_HOST}/daig_test")
    try:
        with httpx.Client(
            base_url=settings.management_url, auth=settings.management_credentials, timeout=10
        ) as http:
            vhosts = {v["name"] for v in http.get("/api/vhosts").json()}
            for user in http.get("/api/users").json():
                name, _, vhost = str(user["name"]).partition("@")
                ours = name.startswith("daig-provider-") and vhost.startswith("daig_test_")
                if ours and vhost not in vhosts:
                    http.delete(f"/api/users/{quote(user['name'], safe='')}")
    except (httpx.HTTPError, ValueError, TypeError):
        pass  # no management API: nothing was created through it either


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server in its own process (a real S3 API over HTTP)."""
    port = free_port()
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 30, what="moto S3 server")
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def settings(database_url: str, amqp_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, vhost and local blob directory."""
    return Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        blob_url=(tmp_path / "blobs").as_uri(),
        public_api_url="http://127.0.0.1:1",  # replaced by api_server when one runs
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        lease_seconds=30,
        straggler_floor_seconds=30,
        signups_per_ip=10_000,  # every test user signs up from 127.0.0.1
        # Tests of replication turn it on (tests/integration/test_replication.py): the others
        # count results and credits of unreplicated tasks.
        replication=False,
    )


@pytest.fixture
def api_server(settings: Settings) -> Iterator[ApiServer]:
    with ApiServer(settings) as server:
        yield server


@pytest.fixture(scope="session")
def digits_files(tmp_path_factory: pytest.TempPathFactory):
    """The digits example: a Keras 3 MLP (.h5), training and held-out arrays."""
    from daig.examples import write_digits

    return write_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def keras2_digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same MLP saved by Keras 2 (tf-keras), in a separate process (it can't share one)."""
    path = tmp_path_factory.mktemp("keras2") / "digits-mlp-keras2.h5"
    code = (
        "import sys, tf_keras; from daig.examples import build_mlp; "
        "build_mlp(tf_keras).save(sys.argv[1])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path)], check=True, capture_output=True, timeout=300
    )
    return path
