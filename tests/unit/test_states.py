"""The transition tables themselves: every allowed move, every forbidden one, the invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest

from daig.db.models import ClaimState, ProjectState, TaskState
from daig.dispatch import Pending, _queue_sql
from daig.states import (
    CLAIM_TABLE,
    HOLDING,
    PROJECT_TABLE,
    TAKES_WORK,
    TASK_TABLE,
    TRAINING,
    ClaimAction,
    Guard,
    IllegalTransition,
    Lease,
    Machine,
    ProjectAction,
    TaskAction,
    is_live,
    rows,
)
from daig.states.sql import live_claim_sql, state_in

P, T, C = ProjectState, TaskState, ClaimState
PA, TA, CA = ProjectAction, TaskAction, ClaimAction

# Written out again on purpose: a change to a table must change this test too.
PROJECT_MOVES = {
    (PA.START, P.CREATED): P.QUEUED,
    (PA.RUN, P.QUEUED): P.RUNNING,
    (PA.PAUSE, P.QUEUED): P.PAUSED,
    (PA.PAUSE, P.RUNNING): P.PAUSED,
    (PA.RESUME, P.PAUSED): P.RUNNING,
    (PA.CANCEL, P.CREATED): P.CANCELLED,
    (PA.CANCEL, P.QUEUED): P.CANCELLED,
    (PA.CANCEL, P.RUNNING): P.CANCELLED,
    (PA.CANCEL, P.PAUSED): P.CANCELLED,
    (PA.FINISH, P.RUNNING): P.DONE,
    (PA.FAIL, P.QUEUED): P.FAILED,
    (PA.FAIL, P.RUNNING): P.FAILED,
}
TASK_MOVES = {
    (TA.QUEUE, T.PENDING): T.QUEUED,
    (TA.REPUBLISH, T.QUEUED): T.QUEUED,
    (TA.CLAIM, T.PENDING): T.CLAIMED,
    (TA.CLAIM, T.QUEUED): T.CLAIMED,
    (TA.CLAIM, T.CLAIMED): T.CLAIMED,
    (TA.LET_GO, T.CLAIMED): T.PENDING,
    (TA.REISSUE, T.CLAIMED): T.PENDING,
    (TA.STOP, T.PENDING): T.PENDING,
    (TA.STOP, T.QUEUED): T.PENDING,
    (TA.STOP, T.CLAIMED): T.PENDING,
    (TA.DROP_MESSAGE, T.QUEUED): T.PENDING,
    (TA.ACCEPT, T.PENDING): T.DONE,
    (TA.ACCEPT, T.QUEUED): T.DONE,
    (TA.ACCEPT, T.CLAIMED): T.DONE,
    (TA.ACCEPT, T.VERIFYING): T.DONE,
    (TA.VERIFY, T.PENDING): T.VERIFYING,
    (TA.VERIFY, T.QUEUED): T.VERIFYING,
    (TA.VERIFY, T.CLAIMED): T.VERIFYING,
}
CLAIM_MOVES = {
    (CA.HEARTBEAT, C.ACTIVE): C.ACTIVE,
    (CA.RELEASE, C.ACTIVE): C.RELEASED,
    (CA.EXPIRE, C.ACTIVE): C.EXPIRED,
    (CA.FAIL, C.ACTIVE): C.RELEASED,
    (CA.FAIL, C.EXPIRED): C.RELEASED,
    (CA.FINISH, C.ACTIVE): C.FINISHED,
    (CA.FINISH, C.EXPIRED): C.FINISHED,
    (CA.SUPERSEDE, C.ACTIVE): C.SUPERSEDED,
}
# The moves that need the row free of any live lease.
UNHELD_ONLY = {(TA.CLAIM, T.CLAIMED), (TA.LET_GO, T.CLAIMED), (CA.EXPIRE, C.ACTIVE)}
HELD_ONLY = {(CA.HEARTBEAT, C.ACTIVE)}  # a lapsed lease is never renewed

MACHINES: list[tuple[Machine[Any, Any], type[StrEnum], type[StrEnum], dict[Any, Any]]] = [
    (PROJECT_TABLE, ProjectAction, ProjectState, PROJECT_MOVES),
    (TASK_TABLE, TaskAction, TaskState, TASK_MOVES),
    (CLAIM_TABLE, ClaimAction, ClaimState, CLAIM_MOVES),
]
ALLOWED = [
    pytest.param(machine, action, state, target, id=f"{machine.name}-{action}-from-{state}")
    for machine, _, _, moves in MACHINES
    for (action, state), target in moves.items()
]
FORBIDDEN = [
    pytest.param(machine, action, state, id=f"{machine.name}-{action}-from-{state}")
    for machine, actions, states, moves in MACHINES
    for action in actions
    for state in states
    if (action, state) not in moves
]


@pytest.mark.parametrize(("machine", "moves"), [(m[0], m[3]) for m in MACHINES])
def test_the_tables_hold_exactly_the_moves_written_out_here(
    machine: Machine[Any, Any], moves: dict[Any, Any]
) -> None:
    assert {key: rule.target for key, rule in machine.rules.items()} == moves


@pytest.mark.parametrize(("machine", "action", "state", "target"), ALLOWED)
def test_every_allowed_move(
    machine: Machine[Any, Any], action: Any, state: Any, target: Any
) -> None:
    held_only = (action, state) in HELD_ONLY
    assert machine.may(action, state.value, live=held_only)
    assert machine.move(action, state.value, live=held_only) == target
    assert machine.move(action, state, live=held_only) is target  # enum or the row's plain string
    assert machine.may(action, state, live=not held_only) == (
        (action, state) not in UNHELD_ONLY | HELD_ONLY
    )


@pytest.mark.parametrize(("machine", "action", "state"), FORBIDDEN)
def test_every_other_move_is_refused(machine: Machine[Any, Any], action: Any, state: Any) -> None:
    for live in (False, True, None):
        assert not machine.may(action, state.value, live=live)
        with pytest.raises(IllegalTransition) as refused:
            machine.move(action, state.value, live=live)
        assert (refused.value.machine, refused.value.action, refused.value.state) == (
            machine.name,
            action,
            state,
        )


@pytest.mark.parametrize(("action", "state"), sorted(UNHELD_ONLY | HELD_ONLY))
def test_a_guarded_move_must_be_told_whether_a_live_lease_holds_the_row(
    action: Any, state: Any
) -> None:
    table = TASK_TABLE if isinstance(action, TaskAction) else CLAIM_TABLE
    guard = Guard.HELD if (action, state) in HELD_ONLY else Guard.UNHELD
    assert table.rules[(action, state)].guard is guard
    with pytest.raises(ValueError, match="live lease"):
        table.may(action, state)


def test_an_unknown_state_is_an_error() -> None:
    with pytest.raises(ValueError):
        TASK_TABLE.may(TA.CLAIM, "lost")


def test_final_states_have_no_way_out() -> None:
    assert PROJECT_TABLE.final == {P.DONE, P.FAILED, P.CANCELLED}
    assert TASK_TABLE.final == {T.DONE}
    assert CLAIM_TABLE.final == {C.RELEASED, C.FINISHED, C.SUPERSEDED}
    for machine, *_ in MACHINES:
        assert not [key for key in machine.rules if key[1] in machine.final]


@pytest.mark.parametrize("machine", [m[0] for m in MACHINES], ids=lambda m: m.name)
def test_every_state_is_reachable_from_the_initial_one(machine: Machine[Any, Any]) -> None:
    reached, frontier = {machine.initial}, [machine.initial]
    while frontier:
        state = frontier.pop()
        for (_, source), rule in machine.rules.items():
            if source == state and rule.target not in reached:
                reached.add(rule.target)
                frontier.append(rule.target)
    assert reached == set(machine.states)


def test_a_task_goes_back_to_pending_only_if_no_live_claim_holds_it() -> None:
    for (action, source), rule in TASK_TABLE.rules.items():
        if (source, rule.target) != (T.CLAIMED, T.PENDING):
            continue
        if rule.lease is Lease.CLEAR:  # given out as free: nobody may hold it
            assert rule.guard in (Guard.UNHELD, Guard.CLAIMS_ENDED), action
        else:  # given out again while held (a straggler): it keeps its live lease
            assert (action, rule.guard, rule.lease) == (TA.REISSUE, Guard.ALWAYS, Lease.KEEP)
    assert not TASK_TABLE.may(TA.LET_GO, T.CLAIMED, live=True)
    assert TASK_TABLE.move(TA.LET_GO, T.CLAIMED, live=False) is T.PENDING
    # only pause and cancel end every claim of a task, and they do it first
    ends_claims = {a for (a, _), r in TASK_TABLE.rules.items() if r.guard is Guard.CLAIMS_ENDED}
    assert ends_claims == {TA.STOP}


def test_a_lease_is_cleared_only_by_a_rule_that_knows_the_task_is_free() -> None:
    for machine, *_ in MACHINES:
        for key, rule in machine.rules.items():
            if rule.lease is Lease.CLEAR:
                assert rule.guard is not Guard.ALWAYS, key


def test_a_claimed_task_is_claimed_again_only_once_every_lease_lapsed() -> None:
    assert not TASK_TABLE.may(TA.CLAIM, T.CLAIMED, live=True)
    assert TASK_TABLE.may(TA.CLAIM, T.CLAIMED, live=False)
    # a straggler given out again is pending with its live lease: claimable
    assert TASK_TABLE.may(TA.CLAIM, T.PENDING, live=True)
    assert TASK_TABLE.may(TA.CLAIM, T.QUEUED, live=True)
    assert not TASK_TABLE.may(TA.CLAIM, T.DONE, live=False)


def test_a_result_is_recorded_for_any_unfinished_task_from_a_claim_not_given_back() -> None:
    assert set(TASK_TABLE.sources(TA.ACCEPT)) == set(TaskState) - TASK_TABLE.final
    # an expired claim's late result still counts; a released one's never does
    assert set(CLAIM_TABLE.sources(CA.FINISH)) == {C.ACTIVE, C.EXPIRED}
    assert CLAIM_TABLE.sources(CA.FAIL) == CLAIM_TABLE.sources(CA.FINISH)
    assert set(CLAIM_TABLE.sources(CA.SUPERSEDE)) == {HOLDING}


def test_only_a_holding_claim_is_live_and_every_claim_starts_holding() -> None:
    assert CLAIM_TABLE.initial is HOLDING
    for action in (CA.HEARTBEAT, CA.RELEASE, CA.EXPIRE, CA.SUPERSEDE):
        assert CLAIM_TABLE.sources(action) == (HOLDING,)
    now = datetime.now(UTC)
    assert is_live(now + timedelta(seconds=1), now)
    assert not is_live(now, now)
    assert not is_live(None, now)


def test_projects_take_work_only_while_running_and_train_while_queued_or_running() -> None:
    assert {P.RUNNING} == TAKES_WORK
    assert TRAINING == set(PROJECT_TABLE.sources(PA.PAUSE)) == set(PROJECT_TABLE.sources(PA.FAIL))
    assert PROJECT_TABLE.initial is P.CREATED
    assert set(PROJECT_TABLE.sources(PA.CANCEL)) == set(ProjectState) - PROJECT_TABLE.final


def test_actions_with_one_target_name_it() -> None:
    assert TASK_TABLE.target(TA.CLAIM) is T.CLAIMED
    assert CLAIM_TABLE.target(CA.EXPIRE) is C.EXPIRED
    assert PROJECT_TABLE.target(PA.CANCEL) is P.CANCELLED


def test_sql_takes_its_states_from_the_tables() -> None:
    assert state_in([T.PENDING]) == "state = 'pending'"
    assert state_in(TASK_TABLE.final, "t.state", negate=True) == "t.state <> 'done'"
    assert state_in([P.QUEUED, P.RUNNING], "p.state") == "p.state IN ('queued', 'running')"
    assert live_claim_sql("c") == "c.state = 'active' AND c.lease_expires_at > now()"
    # dispatch still names the partial index's predicate literally, so Postgres can use it
    queue = _queue_sql(Pending.ANY)
    assert "SET state = 'queued'" in queue and "AND state = 'pending' ORDER BY" in queue
    # a task let go goes back to pending only when no live claim is left on it
    let_go = str(rows._LET_GO)
    assert "CASE WHEN h.lease IS NULL AND t.state = 'claimed' THEN 'pending'" in let_go
    assert "c.state = 'active' AND c.lease_expires_at > :now" in let_go
    assert "t.state <> 'done'" in let_go
