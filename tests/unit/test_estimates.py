"""Elapsed time stops while paused; the time estimate's formula; the waiting hint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daig import estimates
from daig.db.models import Project, ProjectState
from daig.elapsed import training_seconds
from daig.states import ProjectAction
from daig.states.rows import enter
from tests.helpers.gui import project_out

T0 = datetime(2026, 12, 5, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def elapsed(project: Project, now: datetime) -> float | None:
    return training_seconds(
        started_at=project.started_at,
        finished_at=project.finished_at,
        paused_at=project.paused_at,
        paused_seconds=project.paused_seconds or 0.0,
        now=now,
    )


def test_elapsed_time_stands_still_while_paused_and_goes_on_after() -> None:
    project = Project(state=ProjectState.QUEUED, started_at=T0, paused_seconds=0.0)
    project.state = ProjectState.RUNNING
    assert elapsed(project, at(10)) == 10
    enter(project, ProjectAction.PAUSE, now=at(10))
    assert elapsed(project, at(10)) == elapsed(project, at(500)) == 10
    enter(project, ProjectAction.RESUME, now=at(500))
    assert project.paused_at is None and project.paused_seconds == 490
    assert elapsed(project, at(520)) == 30
    enter(project, ProjectAction.PAUSE, now=at(520))
    enter(project, ProjectAction.CANCEL, now=at(900))  # cancelled while paused
    assert elapsed(project, at(5000)) == 30


def test_no_time_before_the_start() -> None:
    assert (
        training_seconds(started_at=None, finished_at=None, paused_at=None, paused_seconds=0.0)
        is None
    )


WORK = estimates.Workload(
    work=1_200_000, rounds=3, task_size=4, max_contributors=4, replica_share=0.0
)
MEASURED = estimates.Throughput(rate=10_000.0, measured=True)


def test_time_follows_the_formula() -> None:
    # a task is 1,200,000 / 12 = 100,000 units of work: 10 s at 10,000 a second
    assert estimates.training_seconds(WORK, 4, MEASURED) == 3 * 1 * 10.0
    assert estimates.training_seconds(WORK, 2, MEASURED) == 3 * 2 * 10.0
    assert estimates.training_seconds(WORK, 1, MEASURED) == 3 * 4 * 10.0
    assert estimates.training_seconds(WORK, 50, MEASURED) == 30.0  # no more than K at once
    replicated = estimates.Workload(**{**vars(WORK), "replica_share": 0.5})
    assert estimates.training_seconds(replicated, 4, MEASURED) == 45.0
    assumed = estimates.Throughput(rate=10_000.0, measured=False)
    overhead = estimates.ASSUMED_OVERHEAD_SECONDS
    assert estimates.training_seconds(WORK, 4, assumed) == 3 * (10.0 + overhead)


def test_no_volunteers_no_time() -> None:
    assert estimates.training_seconds(WORK, 0, MEASURED) is None
    text = estimates.summary(None, 0, 0, MEASURED)
    assert text == "no volunteers online: cannot estimate time"
    words = estimates.summary(30.0, 2, 3, MEASURED)
    assert words.startswith("about 30 s with the 2 volunteers online now (3 agents")


def test_waiting_hint_only_while_training_with_nothing_in_flight() -> None:
    waiting = project_out(state="running", tasks_in_flight=0, volunteers_online=3)
    assert waiting.waiting_hint == "waiting for volunteers: 3 online now"
    assert project_out(state="running", tasks_in_flight=2, volunteers_online=3).waiting_hint == ""
    assert project_out(state="paused", volunteers_online=3).waiting_hint == ""
    assert project_out(state="queued", volunteers_online=0).waiting_hint.endswith("0 online now")


def test_rounds_are_numbered_alike_in_the_summary_and_the_tables() -> None:
    from daig_cli.project_view import rounds_table
    from tests.helpers.gui import round_out

    closed = round_out(index=0, closed_at="2025-01-01T00:01:00+00:00", accepted=4)
    current = round_out(index=1)
    assert (closed.number, current.number) == (1, 2)  # "round 1 of R" once round 0 closed
    table = rounds_table([closed, current])
    assert list(table.columns[0].cells) == ["1", "2"]
