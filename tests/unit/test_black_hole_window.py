"""The black-hole check's arithmetic: messages taken per account over a window, the verdict,
and the broker user names and channel counters it reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daig.management import _channel
from daig.refusals import COUNTED_REASONS, bucket_of
from daig.topology import provider_broker_user, provider_of_broker_user
from daig_scheduler.consumption import (
    STATS_LAG_SECONDS,
    BlackHolePolicy,
    ChannelCount,
    ConsumptionWindow,
    is_black_hole,
    reason,
)

POLICY = BlackHolePolicy(min_messages=30, claim_fraction=0.1, window_seconds=60)


def test_the_first_sample_is_a_baseline_only() -> None:
    window = ConsumptionWindow(60)
    window.observe(1000, [ChannelCount("c1", 7, 500)])  # taken before the check started
    assert window.taken(7) is None
    window.observe(1010, [ChannelCount("c1", 7, 540)])
    taken = window.taken(7)
    assert taken is not None and taken.messages == 40
    assert taken.since == 1000 - STATS_LAG_SECONDS
    assert taken.seconds == 10


def test_a_new_channel_counts_from_zero_and_channels_of_an_account_add_up() -> None:
    window = ConsumptionWindow(60)
    window.observe(1000, [ChannelCount("c1", 7, 0)])
    window.observe(1010, [ChannelCount("c1", 7, 5), ChannelCount("c2", 7, 20)])
    window.observe(1020, [ChannelCount("c2", 7, 30), ChannelCount("c3", 8, 3)])  # c1 closed
    seven, eight = window.taken(7), window.taken(8)
    assert seven is not None and seven.messages == 5 + 20 + 10
    assert eight is not None and eight.messages == 3
    assert [t.provider_id for t in window.over(30)] == [7]


def test_a_reused_channel_name_with_a_lower_count_starts_again() -> None:
    window = ConsumptionWindow(60)
    window.observe(1000, [ChannelCount("c1", 7, 100)])
    window.observe(1010, [ChannelCount("c1", 7, 4)])
    taken = window.taken(7)
    assert taken is not None and taken.messages == 4


def test_only_the_last_window_counts() -> None:
    window = ConsumptionWindow(60)
    window.observe(1000, [ChannelCount("c1", 7, 0)])
    window.observe(1010, [ChannelCount("c1", 7, 50)])
    window.observe(1065, [ChannelCount("c1", 7, 60)])
    taken = window.taken(7)
    assert taken is not None and taken.messages == 60
    window.observe(1071, [ChannelCount("c1", 7, 60)])  # the 50 taken by 1010 fall out
    taken = window.taken(7)
    assert taken is not None and taken.messages == 10 and taken.since == 1010 - STATS_LAG_SECONDS
    window.observe(1130, [ChannelCount("c1", 7, 60)])
    assert window.taken(7) is None


def test_forget_starts_an_account_afresh() -> None:
    window = ConsumptionWindow(60)
    window.observe(1000, [ChannelCount("c1", 7, 0)])
    window.observe(1010, [ChannelCount("c1", 7, 50)])
    window.forget(7)
    assert window.taken(7) is None
    window.observe(1020, [ChannelCount("c1", 7, 52)])
    taken = window.taken(7)
    assert taken is not None and taken.messages == 2


@pytest.mark.parametrize(
    ("messages", "attempts", "black_hole"),
    [
        (30, 0, True),  # the threshold itself
        (29, 0, False),  # too few to judge
        (400, 39, True),  # under 10%
        (400, 40, False),  # 10%: not below
        (30, 30, False),  # an honest agent tries every message
        (1000, 2, True),
    ],
)
def test_verdict(messages: int, attempts: int, black_hole: bool) -> None:
    assert is_black_hole(messages, attempts, POLICY) is black_hole


def test_the_reason_says_what_it_took_and_claimed() -> None:
    window = ConsumptionWindow(60)
    window.observe(1000, [ChannelCount("c1", 7, 0)])
    window.observe(1040, [ChannelCount("c1", 7, 412)])
    taken = window.taken(7)
    assert taken is not None
    assert reason(taken, 0, 0) == "its agent took 412 task messages in 40 s and claimed none"
    assert reason(taken, 1, 2).endswith("and tried to claim only 3 of them")


def test_broker_user_names_round_trip_and_others_are_not_providers() -> None:
    assert provider_of_broker_user(provider_broker_user(42)) == 42
    assert provider_of_broker_user(provider_broker_user(42, "v1"), "v1") == 42
    assert provider_of_broker_user(provider_broker_user(42, "v1"), "/") is None
    assert provider_of_broker_user(provider_broker_user(42), "v1") is None
    assert provider_of_broker_user("guest") is None
    assert provider_of_broker_user("daig-provider-x") is None


def test_a_channels_taken_count_is_acks_and_deliveries_without_ack() -> None:
    row = {
        "name": "a -> b (1)",
        "user": "daig-provider-3",
        "prefetch_count": 1000,
        "consumer_count": 1,
        "message_stats": {"ack": 5, "deliver_no_ack": 7, "get_no_ack": 1, "deliver_get": 99},
    }
    assert _channel(row).taken == 13
    assert _channel({**row, "message_stats": []}).taken == 0  # no message moved yet
    assert _channel({"name": "x"}).taken == 0


def test_every_refusal_of_a_task_message_counts_but_a_quarantined_accounts() -> None:
    # unknown_task: a deleted project's messages stay queued until they expire
    assert "quarantined" not in COUNTED_REASONS
    assert {
        "stale_round",
        "task_claimed",
        "own_replica",
        "contributor_cap",
        "unknown_task",
    } <= COUNTED_REASONS
    assert bucket_of(datetime.fromtimestamp(1009.9, UTC)) == datetime.fromtimestamp(1000, UTC)
