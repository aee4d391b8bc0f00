"""``LocalCluster``: the environment it builds, its roles, and that ``close`` removes it all.

Runs on the test Postgres and RabbitMQ like every integration test; the cluster's own
database and vhost are named ``daig_test_*`` so a crashed run's leftovers are swept too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from daig.settings import Settings
from daig_api.broker_accounts import ensure_provider_account
from daig_cli.cluster import LocalCluster
from daig_cli.processes import free_port
from tests.helpers.services import AMQP_HOST, PG_ADMIN_URL

SECRET = "local-cluster-test-secret-long-enough-for-hs256"


@pytest.fixture
def owned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalCluster]:
    """A throw-away cluster on the test services' servers (closed again if a test did not)."""
    monkeypatch.setenv("DAIG_DATABASE_URL", f"{PG_ADMIN_URL}/daig")
    monkeypatch.setenv("DAIG_AMQP_URL", f"{AMQP_HOST}/%2F")
    cluster = LocalCluster.owned(
        tmp_path, prefix="daig_test", secret=SECRET, settings={"lease_seconds": "7"}
    )
    yield cluster
    cluster.close()


def _database_exists(database_url: str) -> bool:
    url = make_url(database_url)
    engine = create_engine(url.set(database="postgres"))
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
    finally:
        engine.dispose()
    return found is not None


def _management(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.management_url, auth=settings.management_credentials, timeout=10
    )


def _vhost_exists(settings: Settings, vhost: str) -> bool:
    with _management(settings) as http:
        return http.get(f"/api/vhosts/{quote(vhost, safe='')}").status_code == 200


def _users(settings: Settings) -> set[str]:
    with _management(settings) as http:
        return {str(user["name"]) for user in http.get("/api/users").json()}


def test_owned_cluster_builds_its_environment(owned: LocalCluster, tmp_path: Path) -> None:
    env = owned.env
    assert owned.database is not None and owned.vhost is not None
    assert env["DAIG_DATABASE_URL"] == owned.database_url == owned.database.url
    assert owned.database.name.startswith("daig_test_")
    assert env["DAIG_AMQP_URL"] == owned.amqp_url == f"{AMQP_HOST}/{owned.vhost.name}"
    assert owned.vhost.name == owned.database.name  # one name for a run's resources
    assert env["DAIG_BLOB_URL"] == (tmp_path / "blobs").as_uri()
    assert env["DAIG_PUBLIC_API_URL"] == owned.api_url == f"http://127.0.0.1:{owned.port}"
    assert env["DAIG_SECRET_KEY"] == SECRET
    assert env["DAIG_LEASE_SECONDS"] == "7"
    assert env["XDG_CONFIG_HOME"] == str(tmp_path / "config")
    assert owned.log_dir == tmp_path / "logs"

    # Created and migrated; the vhost exists with permissions for the URL's user.
    engine = create_engine(owned.database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()
    assert _vhost_exists(Settings(amqp_url=owned.amqp_url), owned.vhost.name)


def test_given_urls_are_used_and_not_owned(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    cluster = LocalCluster.owned(tmp_path, database_url=database_url, amqp_url=amqp_url)
    assert cluster.database is None and cluster.vhost is None
    assert cluster.env["DAIG_DATABASE_URL"] == database_url
    assert cluster.env["DAIG_AMQP_URL"] == amqp_url
    assert cluster.env.get("DAIG_SECRET_KEY") != SECRET  # none given: none built
    cluster.close()
    assert _database_exists(database_url)  # the fixture's, which drops it itself
    assert tmp_path.exists()


def test_close_drops_the_database_the_vhost_and_its_provider_users(
    owned: LocalCluster, amqp_url: str
) -> None:
    assert owned.database is not None and owned.vhost is not None
    settings = Settings(amqp_url=owned.amqp_url)
    provider_users = {ensure_provider_account(settings, n).username for n in (1, 2)}
    elsewhere = ensure_provider_account(Settings(amqp_url=amqp_url), 1).username
    assert provider_users | {elsewhere} <= _users(settings)

    owned.close()

    assert not _database_exists(owned.database_url)
    assert not _vhost_exists(settings, owned.vhost.name)
    users = _users(settings)
    assert not provider_users & users
    assert elsewhere in users  # another vhost's users stay
    owned.close()  # closing twice is harmless


def test_roles_start_answer_health_and_stop(owned: LocalCluster) -> None:
    owned.start_api()
    metrics_port = free_port()
    owned.start_role("scheduler", "scheduler", metrics_port=metrics_port)
    owned.wait_healthy(("api", "scheduler"), timeout=90)
    assert owned.health_url("scheduler") == f"http://127.0.0.1:{metrics_port}/healthz"
    assert owned.healthy("api") and owned.healthy("scheduler")
    assert httpx.get(f"{owned.api_url}/healthz", timeout=5).status_code == 200

    owned.kill("api")
    assert not owned.healthy("api")
    owned.restart("api")  # as it was started: same port
    owned.wait_healthy(timeout=90)

    assert owned.stop("scheduler") is not None
    assert owned.dead() is None
    owned.close()
    assert not owned.processes
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{owned.api_url}/healthz", timeout=2)


def test_a_role_that_exits_is_named_with_its_log(owned: LocalCluster) -> None:
    owned.start_role("broken", "no-such-role-" + uuid.uuid4().hex[:6])
    with pytest.raises(RuntimeError, match="broken exited with"):
        owned.wait_for_url(f"{owned.api_url}/healthz", timeout=30)


def test_a_vhost_made_through_the_management_api_goes_with_the_users_the_api_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, amqp_url: str
) -> None:
    """``daig demo``'s way (no rabbitmqctl): after ``close`` no user of its vhost is left."""
    from daig.client import DaigClient

    monkeypatch.setenv("DAIG_DATABASE_URL", f"{PG_ADMIN_URL}/daig")
    monkeypatch.setenv("DAIG_AMQP_URL", f"{AMQP_HOST}/%2F")
    cluster = LocalCluster.owned(
        tmp_path, prefix="daig_test", secret=SECRET, vhost_by_management=True
    )
    try:
        assert cluster.vhost is not None and cluster.vhost.management
        settings = Settings(amqp_url=cluster.amqp_url)
        assert _vhost_exists(settings, cluster.vhost.name)
        elsewhere = ensure_provider_account(Settings(amqp_url=amqp_url), 1).username
        cluster.start_api()
        cluster.wait_healthy()
        made = set()
        for name in ("volunteer-1", "volunteer-2"):
            with DaigClient(cluster.api_url) as client:
                client.signup(name, "volunteer-pass")
                client.login(name, "volunteer-pass")
                made.add(client.provider_config().broker_user)
        suffix = "@" + cluster.vhost.name
        assert len(made) == 2 and all(user.endswith(suffix) for user in made)
        assert made <= _users(settings)
    finally:
        cluster.close()
    assert not _vhost_exists(settings, cluster.vhost.name)
    users = _users(settings)
    assert not {user for user in users if user.endswith(suffix)}
    assert elsewhere in users  # another vhost's users stay
