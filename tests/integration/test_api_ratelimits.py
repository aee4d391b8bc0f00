"""Login and sign-up rate limits over real HTTP, counted in the real Postgres ``rate_events``.

Client addresses come from ``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1 (as it
would from a reverse proxy there), so each test speaks from addresses of its own.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from daig.db.models import RateEvent
from daig.db.session import make_engine, make_sessionmaker
from tests.helpers.accounts import PASSWORD
from tests.helpers.services import ApiServer, module_api_server

PER_USER, PER_IP, WINDOW, SIGNUPS = 3, 6, 4.0, 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One server with small limits; tests keep apart by fresh user names and addresses."""
    with module_api_server(
        tmp_path_factory,
        login_failures_per_user=PER_USER,
        login_failures_per_ip=PER_IP,
        login_window_seconds=WINDOW,
        signups_per_ip=SIGNUPS,
        signup_window_seconds=WINDOW,
    ) as server:
        yield server


def _ip() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def _signup(server: ApiServer, ip: str, name: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/signup",
        json={"username": name or f"u-{uuid.uuid4().hex[:10]}", "password": PASSWORD},
        headers={"X-Forwarded-For": ip},
    )


def _login(server: ApiServer, username: str, password: str, ip: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/token",
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": ip},
        timeout=30,
    )


def _user(server: ApiServer) -> str:
    response = _signup(server, _ip())
    assert response.status_code == 201, response.text
    return str(response.json()["username"])


def _assert_limited(response: httpx.Response, words: str) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["reason"] == "rate_limited"
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= math.ceil(WINDOW)
    assert body["detail"] == f"{words}; try again in {seconds} s"
    return seconds


def test_failed_logins_lock_the_account_even_for_the_right_password_until_the_window_passes(
    server: ApiServer,
) -> None:
    alice, home = _user(server), _ip()
    for _ in range(PER_USER):
        assert _login(server, alice, "wrong-password", home).status_code == 401
    seconds = _assert_limited(
        _login(server, alice, PASSWORD, home), "too many failed logins for this account"
    )
    # The lock is on the account: another address doesn't help, ...
    _assert_limited(
        _login(server, alice, PASSWORD, _ip()), "too many failed logins for this account"
    )
    # ... while other accounts from the same address still log in.
    assert _login(server, _user(server), PASSWORD, home).status_code == 200
    # Attempts while locked are not counted, so the lock ends one window after the failures.
    time.sleep(seconds + 0.2)
    assert _login(server, alice, PASSWORD, home).status_code == 200


def test_failed_logins_from_one_address_are_limited_across_accounts(server: ApiServer) -> None:
    bob, guesser = _user(server), _ip()
    for _ in range(PER_IP):
        name = f"nobody-{uuid.uuid4().hex[:8]}"
        assert _login(server, name, "wrong-password", guesser).status_code == 401
    _assert_limited(
        _login(server, bob, PASSWORD, guesser), "too many failed logins from your network address"
    )
    assert _login(server, bob, PASSWORD, _ip()).status_code == 200


def test_a_successful_login_clears_the_accounts_failures(server: ApiServer) -> None:
    carol = _user(server)
    for _ in range(3):
        for _ in range(PER_USER - 1):
            assert _login(server, carol, "wrong-password", _ip()).status_code == 401
        assert _login(server, carol, PASSWORD, _ip()).status_code == 200


def test_parallel_guesses_cannot_outrun_the_limit(server: ApiServer) -> None:
    dave = _user(server)
    with ThreadPoolExecutor(12) as pool:
        codes = list(
            pool.map(lambda _: _login(server, dave, "wrong-password", _ip()).status_code, range(12))
        )
    assert set(codes) <= {401, 429}
    assert codes.count(401) <= PER_USER, codes


def test_signups_from_one_address_are_limited(server: ApiServer) -> None:
    office = _ip()
    for _ in range(SIGNUPS):
        assert _signup(server, office).status_code == 201
    refused = _signup(server, office, name="one-too-many")
    _assert_limited(refused, "too many sign-ups from your network address")
    assert _signup(server, _ip(), name="one-too-many").status_code == 201


def test_expired_events_are_pruned(server: ApiServer) -> None:
    erin = _user(server)
    for _ in range(PER_USER):
        assert _login(server, erin, "wrong-password", _ip()).status_code == 401
    time.sleep(WINDOW + 0.2)
    assert _login(server, f"nobody-{uuid.uuid4().hex[:8]}", "wrong", _ip()).status_code == 401
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            left = session.scalar(
                select(func.count()).select_from(RateEvent).where(RateEvent.key == erin)
            )
    finally:
        engine.dispose()
    assert left == 0
