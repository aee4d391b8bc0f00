"""Elapsed time and ETA from the project's start and its rounds' closing times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from requestor_gui.timing import elapsed_seconds, eta_seconds, format_duration
from tests.helpers.gui import project_out, round_out

START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def test_elapsed_runs_from_start_until_finish() -> None:
    project = project_out(started_at=_iso(START), finished_at=None)
    assert elapsed_seconds(project, now=START + timedelta(seconds=90)) == 90
    project.finished_at = START + timedelta(minutes=5)
    assert elapsed_seconds(project, now=START + timedelta(hours=1)) == 300
    assert elapsed_seconds(project_out(started_at=None)) is None


def test_eta_follows_the_pace_of_closed_rounds() -> None:
    project = project_out(state="running", started_at=_iso(START), round=2, total_rounds=6)
    rounds = [
        round_out(index=0, closed_at=_iso(START + timedelta(seconds=10))),
        round_out(index=1, closed_at=_iso(START + timedelta(seconds=20))),
        round_out(index=2, closed_at=None),
    ]
    # 10 s per round; round 3 started 4 s ago: 6 s left of it plus 3 rounds of 10 s.
    assert eta_seconds(project, rounds, now=START + timedelta(seconds=24)) == 36
    # Without the rounds, the pace is elapsed time over rounds done.
    assert eta_seconds(project, None, now=START + timedelta(seconds=20)) == 40


def test_no_eta_before_a_round_closed_or_after_the_end() -> None:
    project = project_out(state="running", started_at=_iso(START), round=0, total_rounds=6)
    assert eta_seconds(project, []) is None
    assert eta_seconds(project.model_copy(update={"state": "done", "round": 6}), []) is None
    assert eta_seconds(project.model_copy(update={"state": "paused", "round": 2}), []) is None


def test_durations_read_naturally() -> None:
    assert format_duration(None) == "—"
    assert format_duration(45.2) == "45 s"
    assert format_duration(200) == "3 min 20 s"
    assert format_duration(3720) == "1 h 02 min"


def test_the_servers_elapsed_time_leaves_pauses_out_of_elapsed_and_eta() -> None:
    # Started 100 s ago, paused for 80 s before round 2 closed: 20 s of training, 10 s a round.
    project = project_out(
        state="running", started_at=_iso(START), round=2, total_rounds=6, elapsed_seconds=24.0
    )
    now = START + timedelta(seconds=104)
    rounds = [round_out(index=1, closed_at=_iso(START + timedelta(seconds=100)))]
    assert elapsed_seconds(project, now=now) == 24
    # 20 s for 2 rounds: round 3 has 6 s left, then 3 rounds of 10 s (not 50 s each).
    assert eta_seconds(project, rounds, now=now) == 36
