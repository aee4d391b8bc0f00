"""Providers' broker accounts without a broker: names, derived passwords, URLs, settings."""

from __future__ import annotations

import os

import pika
import pytest

from daig.settings import Settings, amqp_vhost
from daig.topology import PROVIDER_PERMISSIONS, provider_broker_user
from daig_api.broker_accounts import provider_amqp_url, provider_password


@pytest.fixture(autouse=True)
def _no_daig_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings here come from the arguments only, not from the developer's DAIG_* variables."""
    for name in os.environ:
        if name.startswith("DAIG_"):
            monkeypatch.delenv(name)


def test_broker_user_names_carry_the_vhost_outside_the_default_one() -> None:
    assert provider_broker_user(7) == "daig-provider-7"
    assert provider_broker_user(7, "/") == "daig-provider-7"
    assert provider_broker_user(7, "staging") == "daig-provider-7@staging"


def test_provider_permissions_are_exact_names() -> None:
    assert PROVIDER_PERMISSIONS.configure == "^$"
    assert PROVIDER_PERMISSIONS.write == r"^daig\.results$"
    assert PROVIDER_PERMISSIONS.read == r"^daig\.tasks$"


def test_passwords_are_deterministic_per_user_and_rotate_with_the_secret() -> None:
    first = provider_password("secret-one", 1)
    assert first == provider_password("secret-one", 1)
    assert first != provider_password("secret-one", 2)
    assert first != provider_password("secret-two", 1)
    assert len(first) == 64 and "secret" not in first


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "/"),
        ("amqp://guest:guest@127.0.0.1:5672", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/", "/"),
        ("amqp://u:p@host/daig_test_1?heartbeat=5", "daig_test_1"),
        ("amqps://u:p@host:5671/prod%2Fa", "prod/a"),
    ],
)
def test_vhost_is_read_as_pika_reads_it(url: str, vhost: str) -> None:
    assert amqp_vhost(url) == vhost == pika.URLParameters(url).virtual_host


def test_provider_url_has_the_public_address_the_api_vhost_and_own_credentials() -> None:
    settings = Settings(
        amqp_url="amqp://admin:s3cret@10.0.0.5:5672/daig",
        public_amqp_url="amqps://someone:else@broker.example.org:5671/daig?heartbeat=30",
    )
    url = provider_amqp_url(settings, "daig-provider-3@daig", "p/w:@")
    params = pika.URLParameters(url)
    assert url.startswith("amqps://")
    assert (params.host, params.port, params.virtual_host) == ("broker.example.org", 5671, "daig")
    assert params.credentials.username == "daig-provider-3@daig"
    assert params.credentials.password == "p/w:@"
    assert params.heartbeat == 30
    assert "admin" not in url and "s3cret" not in url and "else" not in url


def test_provider_url_defaults_to_the_servers_address() -> None:
    settings = Settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/%2F")
    params = pika.URLParameters(provider_amqp_url(settings, "daig-provider-1", "pw"))
    assert (params.host, params.port, params.virtual_host) == ("127.0.0.1", 5672, "/")
    assert (params.credentials.username, params.credentials.password) == ("daig-provider-1", "pw")


def test_management_api_defaults_follow_the_amqp_url() -> None:
    settings = Settings(amqp_url="amqp://ad%40min:pa%3Ass@mq.internal:5672/x")
    assert settings.management_url == "http://mq.internal:15672"
    assert settings.management_credentials == ("ad@min", "pa:ss")
    assert Settings().management_url == "http://127.0.0.1:15672"
    explicit = Settings(
        amqp_url="amqp://guest:guest@127.0.0.1:5672/%2F",
        rabbitmq_management_url="https://mq.example.org/rabbit/",
        rabbitmq_admin_user="ops",
        rabbitmq_admin_password="",
    )
    assert explicit.management_url == "https://mq.example.org/rabbit"
    assert explicit.management_credentials == ("ops", "")
