"""Failed-login limits as pure rules: which keys are counted, how the wait grows, what the
refusal says. The same limits against a real API and Postgres: tests/integration/
test_api_ratelimits.py."""

from __future__ import annotations

from daig.settings import Settings
from daig_api.ratelimit import LOGIN_IP, LOGIN_USER, Limit, backoff_delay, refusal
from daig_api.routes.auth import login_limits


def _limit(free: int = 3, base: float = 1.0, cap: float = 900.0) -> Limit:
    return Limit(LOGIN_USER, "k", free, 3600.0, "w", backoff_seconds=base, backoff_max_seconds=cap)


def test_backoff_waits_nothing_for_the_free_failures_then_doubles_up_to_the_cap() -> None:
    limit = _limit(free=3, base=1.0, cap=60.0)
    delays = [backoff_delay(events, limit) for events in range(12)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff_delay(10**6, limit) == 60  # no overflow however many failures


def test_backoff_starts_at_its_base() -> None:
    assert backoff_delay(5, _limit(free=5, base=2.5)) == 2.5
    assert backoff_delay(6, _limit(free=5, base=2.5)) == 5.0


def test_refusal_counts_down_in_whole_seconds() -> None:
    what = "too many failed logins from this address for this account"
    assert refusal(what, 42) == (
        "too many failed logins from this address for this account; try again in 42 s"
    )


def test_login_failures_are_counted_per_account_and_address_and_per_address_only() -> None:
    settings = Settings(login_failures_per_user=4, login_failures_per_ip=20)
    owner = login_limits(settings, "alice", "192.0.2.1")
    stranger = login_limits(settings, "alice", "198.51.100.7")
    assert [(limit.bucket, limit.max_events) for limit in owner] == [
        (LOGIN_USER, 4),
        (LOGIN_IP, 20),
    ]
    # No limit is keyed by the account alone: the stranger's keys are all different.
    assert {limit.key for limit in owner}.isdisjoint(limit.key for limit in stranger)
    assert all(limit.backoff_seconds == settings.login_backoff_seconds for limit in owner)
    assert all(limit.backoff_max_seconds == settings.login_backoff_max_seconds for limit in owner)
