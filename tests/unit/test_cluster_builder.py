"""The parts of ``daig_cli``'s local-cluster tooling that need no running services."""

from __future__ import annotations

from pathlib import Path

import pytest

from daig_cli.cluster import LocalCluster, settings_env
from daig_cli.local_infra import Database, Vhost, unique_name
from daig_cli.rabbitmqctl import RabbitmqctlError, rabbitmqctl


def test_existing_cluster_uses_the_operators_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DAIG_PUBLIC_API_URL", raising=False)
    monkeypatch.setenv("DAIG_DATABASE_URL", "postgresql+psycopg2://op@db.example/daig")
    cluster = LocalCluster.existing(tmp_path / "logs", host="0.0.0.0", port=8123)
    assert cluster.api_url == "http://127.0.0.1:8123"  # where a local client reaches it
    assert cluster.env["DAIG_PUBLIC_API_URL"] == cluster.api_url
    assert cluster.database_url == "postgresql+psycopg2://op@db.example/daig"
    assert cluster.database is None and cluster.vhost is None
    cluster.close()  # owns nothing: removes nothing
    assert (tmp_path / "logs").is_dir()


def test_existing_cluster_keeps_a_public_url_the_operator_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DAIG_PUBLIC_API_URL", "https://daig.example.org")
    cluster = LocalCluster.existing(tmp_path, port=8123)
    assert cluster.env["DAIG_PUBLIC_API_URL"] == "https://daig.example.org"


def test_names_and_urls() -> None:
    assert settings_env({"lease_seconds": "6"}) == {"DAIG_LEASE_SECONDS": "6"}
    name = unique_name("daig_test")
    assert name.startswith("daig_test_") and len(name) == len("daig_test_") + 12
    assert unique_name("x") != unique_name("x")
    database = Database.named("postgresql+psycopg2://postgres:pw@127.0.0.1:5432/daig", "other")
    assert database.url == "postgresql+psycopg2://postgres:pw@127.0.0.1:5432/other"
    assert database.name == "other"
    vhost = Vhost.named("amqp://guest:guest@127.0.0.1:5672/%2F", "daig test")
    assert vhost.url == "amqp://guest:guest@127.0.0.1:5672/daig%20test"
    assert vhost.name == "daig test"
    assert Vhost.named("amqp://guest:guest@127.0.0.1:5672", "v").url.endswith(":5672/v")


def test_a_missing_rabbitmqctl_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RabbitmqctlError, match="rabbitmqctl is not on PATH"):
        rabbitmqctl("list_vhosts")


def test_a_failing_rabbitmqctl_says_what_it_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "rabbitmqctl"
    fake.write_text('#!/bin/sh\necho "Error: vhost $2 does not exist" >&2\nexit 2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RabbitmqctlError, match="exited 2: Error: vhost gone does not exist"):
        rabbitmqctl("delete_vhost", "gone")
    assert rabbitmqctl("delete_vhost", "gone", check=False).returncode == 2
