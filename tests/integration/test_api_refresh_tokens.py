"""Refresh tokens over real HTTP and Postgres: asked for with ``offline_access``, stored as a
hash only, exchanged for access tokens with a sliding expiry, refused with a clear reason once
expired or revoked; the client renews its access token by itself; an agent started from a saved
login whose access token has expired renews it and signs in, until the login is revoked."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text

from daig.client import ClientError, DaigClient
from daig.settings import Settings
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from provider_agent.saved_login import EXPIRED
from tests.helpers.accounts import PASSWORD
from tests.helpers.services import ApiServer

TTL = 2  # seconds an access token lasts on this module's server


@pytest.fixture
def server(settings: Settings) -> Iterator[ApiServer]:
    with ApiServer(settings.model_copy(update={"token_ttl_seconds": TTL})) as api:
        yield api


@pytest.fixture
def user(server: ApiServer) -> str:
    name = f"saver-{uuid.uuid4().hex[:8]}"
    with DaigClient(server.url) as client:
        client.signup(name, PASSWORD)
    return name


def _token(server: ApiServer, user: str, **extra: str) -> httpx.Response:
    form = {"username": user, "password": PASSWORD} | extra
    return httpx.post(f"{server.url}/v1/auth/token", data=form)


def _refresh(server: ApiServer, refresh_token: str, *, as_json: bool = False) -> httpx.Response:
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    url = f"{server.url}/v1/auth/refresh"
    return httpx.post(url, json=body) if as_json else httpx.post(url, data=body)


def _row(engine: Engine, refresh_token: str) -> dict:
    token_id = uuid.UUID(hex=refresh_token.partition(".")[0])
    with engine.connect() as db:
        found = db.execute(text("SELECT * FROM refresh_tokens WHERE id = :id"), {"id": token_id})
        return dict(found.mappings().one())


def test_only_offline_access_gives_a_refresh_token(server: ApiServer, user: str) -> None:
    plain = _token(server, user)
    assert plain.status_code == 200
    assert set(plain.json()) == {"access_token", "token_type", "expires_in"}
    other_scope = _token(server, user, scope="profile")
    assert "refresh_token" not in other_scope.json()

    offline = _token(server, user, scope="profile offline_access").json()
    token_id, _, secret = offline["refresh_token"].partition(".")
    assert uuid.UUID(hex=token_id)
    assert len(base64.urlsafe_b64decode(secret + "==")) >= 32  # 256 random bits
    assert offline["access_token"] and offline["expires_in"] == TTL


def test_the_database_keeps_only_a_hash(server: ApiServer, user: str, engine: Engine) -> None:
    refresh = _token(server, user, scope="offline_access", label="DAIG window on host")
    refresh_token = refresh.json()["refresh_token"]
    secret = refresh_token.partition(".")[2]
    row = _row(engine, refresh_token)
    assert row["label"] == "DAIG window on host" and row["revoked_at"] is None
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    with engine.connect() as db:
        dump = db.execute(text("SELECT refresh_tokens::text FROM refresh_tokens")).scalars().all()
    assert dump and not any(secret in line for line in dump)


def test_a_refresh_gives_a_working_access_token_and_slides_the_expiry(
    server: ApiServer, user: str, engine: Engine
) -> None:
    refresh_token = _token(server, user, scope="offline_access").json()["refresh_token"]
    long_ago = datetime.now(UTC) - timedelta(days=30)
    with engine.begin() as db:
        db.execute(
            text("UPDATE refresh_tokens SET last_used_at = :t, expires_at = :e"),
            {"t": long_ago, "e": long_ago + timedelta(days=90)},
        )
    for as_json in (False, True):
        answer = _refresh(server, refresh_token, as_json=as_json)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"access_token", "token_type", "expires_in"}
        me = httpx.get(
            f"{server.url}/v1/users/me",
            headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
        )
        assert me.json()["username"] == user
    row = _row(engine, refresh_token)
    assert row["last_used_at"] > datetime.now(UTC) - timedelta(minutes=1)
    slid = row["expires_at"] - datetime.now(UTC)
    assert timedelta(days=89) < slid <= timedelta(days=90)


def test_an_expired_refresh_token_is_refused_saying_to_log_in_again(
    server: ApiServer, user: str, engine: Engine
) -> None:
    refresh_token = _token(server, user, scope="offline_access").json()["refresh_token"]
    with engine.begin() as db:
        db.execute(text("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"))
    refused = _refresh(server, refresh_token)
    assert refused.status_code == 401
    assert refused.json()["reason"] == "refresh_expired"
    assert "expired" in refused.json()["detail"] and "log in again" in refused.json()["detail"]


def test_logout_revokes_and_is_idempotent(server: ApiServer, user: str, engine: Engine) -> None:
    refresh_token = _token(server, user, scope="offline_access").json()["refresh_token"]
    logout = f"{server.url}/v1/auth/logout"
    assert httpx.post(logout, data={"refresh_token": refresh_token}).status_code == 204
    assert _row(engine, refresh_token)["revoked_at"] is not None
    refused = _refresh(server, refresh_token)
    assert refused.status_code == 401 and refused.json()["reason"] == "refresh_revoked"
    assert "log in again" in refused.json()["detail"]
    assert httpx.post(logout, json={"refresh_token": refresh_token}).status_code == 204
    assert httpx.post(logout, data={"refresh_token": "nothing.here"}).status_code == 204


def test_unknown_or_forged_refresh_tokens_are_refused(server: ApiServer, user: str) -> None:
    genuine = _token(server, user, scope="offline_access").json()["refresh_token"]
    token_id = genuine.partition(".")[0]
    for forged in (f"{token_id}.not-the-secret", f"{uuid.uuid4().hex}.x", "garbage", genuine[:-1]):
        refused = _refresh(server, forged)
        assert refused.status_code == 401, forged
        assert refused.json()["reason"] == "refresh_invalid"
    wrong_grant = httpx.post(
        f"{server.url}/v1/auth/refresh", data={"grant_type": "password", "refresh_token": genuine}
    )
    assert wrong_grant.status_code == 422


def test_the_client_renews_an_expired_access_token_once(server: ApiServer, user: str) -> None:
    with DaigClient(server.url) as first:
        first.login(user, PASSWORD, remember=True, label="test")
        assert first.refresh_token
        stale = first.token
    time.sleep(TTL + 1)
    # Expiry unknown to this client: the API's 401 (reason invalid_token) makes it renew.
    with DaigClient(server.url, stale, refresh_token=first.refresh_token) as client:
        assert client.me().username == user
        assert client.token != stale
    with DaigClient(server.url, stale) as without, pytest.raises(ClientError) as error:
        without.me()
    assert error.value.status == 401 and error.value.reason == "invalid_token"

    with DaigClient(server.url, stale, refresh_token=first.refresh_token) as client:
        client.logout()
    revoked = DaigClient(server.url, stale, refresh_token=first.refresh_token)
    with revoked, pytest.raises(ClientError) as error:
        revoked.me()
    assert error.value.reason == "refresh_revoked" and "log in again" in str(error.value)


def test_a_remembered_login_renews_before_its_token_expires(server: ApiServer, user: str) -> None:
    with DaigClient(server.url) as client:
        client.login(user, PASSWORD, remember=True)
        first = client.token
        for _ in range(4):  # across two lifetimes of the access token
            assert client.me().username == user
            time.sleep(TTL / 2)
        assert client.token != first


def test_an_agent_from_a_saved_login_renews_its_expired_token(server: ApiServer, user: str) -> None:
    with DaigClient(server.url) as client:
        token = client.login(user, PASSWORD, remember=True)
        refresh_token = client.refresh_token
    time.sleep(TTL + 1)
    saved = AgentConfig(
        server=server.url, username=user, password="", token=token, refresh_token=refresh_token
    )
    agent = ProviderAgent(saved)
    try:
        broker = agent._session.sign_in()  # the provider config: an authenticated call
        assert broker is not None and broker.broker_user
    finally:
        agent._client.close()

    with DaigClient(server.url, refresh_token=refresh_token) as client:
        client.logout()
    revoked = ProviderAgent(saved)
    try:
        with pytest.raises(ClientError, match="log in again") as error:
            revoked._session.sign_in()
        assert str(error.value) == EXPIRED
    finally:
        revoked._client.close()
