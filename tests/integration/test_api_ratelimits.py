"""Login and sign-up rate limits over real HTTP, counted in the real Postgres ``rate_events``.

Client addresses come from ``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1 (as it
would from a reverse proxy there), so each test speaks from addresses of its own: an owner's
and a stranger's are two addresses, as they would be two machines behind the proxy.
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
from tests.helpers.agents import agent_of
from tests.helpers.services import ApiServer, module_api_server

PER_USER, PER_IP, SIGNUPS = 3, 6, 4  # free failures per (account, address), per address
BACKOFF, BACKOFF_MAX = 1.0, 4.0  # seconds: 1, 2, 4, 4, ... past the free failures
WINDOW = 20.0  # failures older than this are forgotten (longer than the backoff test)
PAIR = "too many failed logins from this address for this account"
ADDRESS = "too many failed logins from this address"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One server with small limits; tests keep apart by fresh user names and addresses."""
    with module_api_server(
        tmp_path_factory,
        login_failures_per_user=PER_USER,
        login_failures_per_ip=PER_IP,
        login_backoff_seconds=BACKOFF,
        login_backoff_max_seconds=BACKOFF_MAX,
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


def _assert_limited(response: httpx.Response, words: str, most: float = BACKOFF_MAX) -> int:
    """The 429's countdown (Retry-After, and the same number in the sentence)."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["reason"] == "rate_limited"
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= math.ceil(most)
    assert body["detail"] == f"{words}; try again in {seconds} s"
    return seconds


def _fail(server: ApiServer, username: str, ip: str, times: int) -> None:
    for _ in range(times):
        assert _login(server, username, "wrong-password", ip).status_code == 401


def test_a_strangers_failures_never_lock_the_owner_out_of_their_own_address(
    server: ApiServer,
) -> None:
    alice, home, stranger = _user(server), _ip(), _ip()
    # Alice's agent logged in before the stranger started guessing.
    agent = httpx.post(
        f"{server.url}/v1/auth/token",
        data={"username": alice, "password": PASSWORD},
        headers={"X-Forwarded-For": home},
    ).json()["access_token"]
    _fail(server, alice, stranger, PER_USER)
    # The stranger is held back, even with the right password ...
    _assert_limited(_login(server, alice, PASSWORD, stranger), PAIR)
    # ... while Alice logs in from her own address, and her agent's token keeps working.
    assert _login(server, alice, PASSWORD, home).status_code == 200
    me = httpx.get(f"{server.url}/v1/users/me", headers={"Authorization": f"Bearer {agent}"})
    assert me.status_code == 200 and me.json()["username"] == alice
    # Other accounts from the stranger's address are not held back by this account's limit.
    assert _login(server, _user(server), PASSWORD, stranger).status_code == 200


def test_the_wait_doubles_with_each_further_failure_up_to_the_maximum(server: ApiServer) -> None:
    bob, guesser = _user(server), _ip()
    _fail(server, bob, guesser, PER_USER)
    waits = []
    for _ in range(4):
        waits.append(_assert_limited(_login(server, bob, "wrong-password", guesser), PAIR))
        time.sleep(waits[-1] + 0.1)
        _fail(server, bob, guesser, 1)  # allowed once the wait is over, and counted
    assert waits == [1, 2, 4, 4]
    # Refused attempts are not counted: hammering during a wait does not lengthen it.
    first = _assert_limited(_login(server, bob, PASSWORD, guesser), PAIR)
    for _ in range(5):
        assert _login(server, bob, PASSWORD, guesser).status_code == 429
    time.sleep(first + 0.1)
    assert _login(server, bob, PASSWORD, guesser).status_code == 200


def test_failed_logins_from_one_address_are_limited_across_accounts(server: ApiServer) -> None:
    carol, guesser = _user(server), _ip()
    for _ in range(PER_IP):
        _fail(server, f"nobody-{uuid.uuid4().hex[:8]}", guesser, 1)
    _assert_limited(_login(server, carol, PASSWORD, guesser), ADDRESS)
    assert _login(server, carol, PASSWORD, _ip()).status_code == 200


def test_a_successful_login_clears_the_failures_from_that_address(server: ApiServer) -> None:
    dave, home = _user(server), _ip()
    for _ in range(2):  # more failures than the free ones, fewer than the address's
        _fail(server, dave, home, PER_USER - 1)
        assert _login(server, dave, PASSWORD, home).status_code == 200


def test_parallel_guesses_cannot_outrun_the_limit(server: ApiServer) -> None:
    erin, guesser = _user(server), _ip()
    with ThreadPoolExecutor(12) as pool:
        codes = list(
            pool.map(
                lambda _: _login(server, erin, "wrong-password", guesser).status_code, range(12)
            )
        )
    assert set(codes) <= {401, 429}
    assert codes.count(401) <= PER_USER, codes


def test_signups_from_one_address_are_limited(server: ApiServer) -> None:
    office = _ip()
    for _ in range(SIGNUPS):
        assert _signup(server, office).status_code == 201
    refused = _signup(server, office, name="one-too-many")
    _assert_limited(refused, "too many sign-ups from your network address", most=WINDOW)
    assert _signup(server, _ip(), name="one-too-many").status_code == 201


def test_expired_events_are_pruned(server: ApiServer) -> None:
    frank = _user(server)
    _fail(server, frank, _ip(), PER_USER)
    time.sleep(WINDOW + 0.2)
    assert _login(server, f"nobody-{uuid.uuid4().hex[:8]}", "wrong", _ip()).status_code == 401
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            left = session.scalar(
                select(func.count())
                .select_from(RateEvent)
                .where(RateEvent.key.endswith(f" {frank}"))
            )
    finally:
        engine.dispose()
    assert left == 0


def test_an_agent_rides_out_a_held_back_login(server: ApiServer, tmp_path) -> None:
    """Failures from the agent's own address (a burst, a neighbour behind the same NAT) hold
    its login back; it logs in once the wait the server named is over instead of exiting."""
    grace, local = _user(server), "127.0.0.1"  # the agent speaks from the socket's address
    _fail(server, grace, local, PER_USER)
    agent = agent_of(server.url, grace, tmp_path)
    try:
        began = time.monotonic()
        agent._session.log_in()
        assert agent._client.me().username == grace
        assert time.monotonic() - began >= BACKOFF * 0.9, "it waited for the backoff"
    finally:
        agent._files.close()
        agent._client.close()
