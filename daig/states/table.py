"""The transition tables of projects, tasks and claims: every allowed move, and nothing else.

A table maps (action, from-state) to a ``Rule``: the state the action leads to, when it may
happen (``Guard``) and what it does to the row's lease (``Lease``). Whatever is not in a table
is forbidden: ``Machine.move`` refuses it, and the set-wise statements built from the tables
(``daig.states.sql``, ``daig.states.rows``) leave such rows as they are.

The invariants the services rely on, checked on the tables by ``tests/unit/test_states.py``:

- ``done`` tasks, ``done``/``failed``/``cancelled`` projects, and ``released``/``finished``/
  ``superseded`` claims are final: no rule leaves them.
- A task's lease (``lease_expires_at``) is the latest lease of its live claims; a live claim is
  an ``active`` claim whose lease has not lapsed (``HOLDING``, ``is_live``).
- A task goes back to ``pending`` with its lease cleared only when no live claim holds it
  (``Guard.UNHELD``) or when the same transaction ended every claim of it first
  (``Guard.CLAIMS_ENDED``: pause, cancel). A straggler's re-issue makes it ``pending`` *with*
  its live lease: still in flight, it fits under the contributor cap, and the first accepted
  result wins.
- A ``claimed`` task is claimed again only once every lease on it lapsed.
- A lapsed lease is never renewed (``Guard.HELD``): the claim is expired whoever notices first,
  so a late heartbeat cannot take back a task that is being given out again (its late result
  still counts, as any expired claim's).
- A replicated task's result waits (``verifying``: not claimable, not done) until its replicas
  settle it; then every task of the shard is ``done``.
- A result is accepted for a task that is not done yet, from a claim that was not given back
  (an expired claim's late result still counts); its other claims are superseded.
- Only a running project's tasks are claimed, heartbeats extend leases and results are
  accepted (``TAKES_WORK``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from daig.db.models import ClaimState, ProjectState, TaskState

A = TypeVar("A", bound=StrEnum)
S = TypeVar("S", bound=StrEnum)


class ProjectAction(StrEnum):
    START = "start"  # the requestor starts it: files checked, weights version 0 written (API)
    RUN = "run"  # the scheduler took it up and opened its first round (scheduler)
    PAUSE = "pause"  # (API)
    RESUME = "resume"  # (API)
    CANCEL = "cancel"  # (API)
    FINISH = "finish"  # every round closed and the final model written (scheduler)
    FAIL = "fail"  # a task keeps failing: training errors (aggregator), dead messages (scheduler)


class TaskAction(StrEnum):
    QUEUE = "queue"  # its message staged in the outbox (dispatch, in all three services)
    REPUBLISH = "republish"  # its message published again: nobody claimed it in time
    CLAIM = "claim"  # a provider takes it with a lease (API)
    LET_GO = "let_go"  # a claim of it ended without a result: released, expired, failed
    REISSUE = "reissue"  # a straggler: given out again while its claim still runs (scheduler)
    STOP = "stop"  # its project paused or cancelled, every claim of it released (API)
    DROP_MESSAGE = "drop_message"  # its message was dead-lettered (scheduler)
    ACCEPT = "accept"  # a result for it accepted, or its replicas settled it (aggregator)
    VERIFY = "verify"  # a replicated task's result recorded, to be verified (aggregator)


class ClaimAction(StrEnum):
    HEARTBEAT = "heartbeat"  # the provider extends its lease (API)
    RELEASE = "release"  # the provider gives the task back, or its project stops (API)
    EXPIRE = "expire"  # its lease lapsed (scheduler)
    FAIL = "fail"  # the provider reports that training failed (aggregator)
    FINISH = "finish"  # its result was accepted (aggregator)
    SUPERSEDE = "supersede"  # another claim's result for the task was accepted (aggregator)


class Guard(StrEnum):
    """When a rule applies."""

    ALWAYS = "always"
    # Only without a live lease: a task that no live claim holds; a claim whose lease lapsed.
    UNHELD = "unheld"
    # Only with a live lease: a claim renewed before its lease lapsed.
    HELD = "held"
    # The same transaction ends every claim of the task first.
    CLAIMS_ENDED = "claims_ended"


class Lease(StrEnum):
    """What a rule does to the row's ``lease_expires_at``."""

    KEEP = "keep"
    EXTEND = "extend"  # to the new lease, unless it holds a later one
    CLEAR = "clear"


@dataclass(frozen=True)
class Rule(Generic[S]):
    target: S
    guard: Guard = Guard.ALWAYS
    lease: Lease = Lease.KEEP


class IllegalTransition(ValueError):
    """An action the table does not allow from the row's state."""

    def __init__(self, machine: str, action: str, state: str) -> None:
        super().__init__(f"a {state} {machine} cannot {action}")
        self.machine = machine
        self.action = action
        self.state = state


class Machine(Generic[A, S]):
    """One entity's table, with the questions the services ask of it."""

    def __init__(
        self, name: str, states: type[S], initial: S, rules: Mapping[tuple[A, S], Rule[S]]
    ) -> None:
        self.name = name
        self.states = states
        self.initial = initial
        self.rules: dict[tuple[A, S], Rule[S]] = dict(rules)
        leaving = {source for (_, source), rule in self.rules.items() if rule.target != source}
        self.final: frozenset[S] = frozenset(s for s in states if s not in leaving)

    def rule(self, action: A, state: str) -> Rule[S] | None:
        """The rule for ``action`` from ``state`` (a row's plain string), if any."""
        return self.rules.get((action, self.states(state)))

    def may(self, action: A, state: str, *, live: bool | None = None) -> bool:
        """Whether the table allows ``action`` from ``state``.

        ``live``: whether a live lease holds the row (see ``is_live``); a rule guarded by
        ``Guard.UNHELD`` or ``Guard.HELD`` needs to know, so leaving it out there is an error,
        not a yes.
        """
        rule = self.rule(action, state)
        if rule is None:
            return False
        if rule.guard in (Guard.UNHELD, Guard.HELD):
            if live is None:
                raise ValueError(
                    f"{self.name} {action} from {state}: say whether a live lease holds it"
                )
            return live if rule.guard is Guard.HELD else not live
        return True

    def move(self, action: A, state: str, *, live: bool | None = None) -> S:
        """The state ``action`` leads to from ``state``; ``IllegalTransition`` if forbidden."""
        rule = self.rule(action, state)
        if rule is None or not self.may(action, state, live=live):
            raise IllegalTransition(self.name, action, state)
        return rule.target

    def sources(self, action: A) -> tuple[S, ...]:
        """The states ``action`` applies to, in the table's order."""
        return tuple(source for (each, source) in self.rules if each == action)

    def target(self, action: A) -> S:
        """The one state ``action`` leads to (an action with several targets has none)."""
        (target,) = {rule.target for (each, _), rule in self.rules.items() if each == action}
        return target

    def rules_of(self, action: A) -> list[Rule[S]]:
        return [rule for (each, _), rule in self.rules.items() if each == action]


def _table(
    rows: Iterable[tuple[A, Iterable[S], Rule[S]]],
) -> dict[tuple[A, S], Rule[S]]:
    table: dict[tuple[A, S], Rule[S]] = {}
    for action, sources, rule in rows:
        for source in sources:
            assert (action, source) not in table, (action, source)
            table[(action, source)] = rule
    return table


# The tables. Each row: (action, the states it applies to, Rule(the state it leads to, when it
# may happen, what it does to the lease)); the defaults are Guard.ALWAYS and Lease.KEEP.
P, T, C = ProjectState, TaskState, ClaimState

PROJECT_TABLE: Machine[ProjectAction, ProjectState] = Machine(
    "project",
    ProjectState,
    P.CREATED,
    _table(
        [
            (ProjectAction.START, [P.CREATED], Rule(P.QUEUED)),
            (ProjectAction.RUN, [P.QUEUED], Rule(P.RUNNING)),
            (ProjectAction.PAUSE, [P.QUEUED, P.RUNNING], Rule(P.PAUSED)),
            (ProjectAction.RESUME, [P.PAUSED], Rule(P.RUNNING)),
            (ProjectAction.CANCEL, [P.CREATED, P.QUEUED, P.RUNNING, P.PAUSED], Rule(P.CANCELLED)),
            (ProjectAction.FINISH, [P.RUNNING], Rule(P.DONE)),
            (ProjectAction.FAIL, [P.QUEUED, P.RUNNING], Rule(P.FAILED)),
        ]
    ),
)

TASK_TABLE: Machine[TaskAction, TaskState] = Machine(
    "task",
    TaskState,
    T.PENDING,
    _table(
        [
            (TaskAction.QUEUE, [T.PENDING], Rule(T.QUEUED)),
            (TaskAction.REPUBLISH, [T.QUEUED], Rule(T.QUEUED)),
            (TaskAction.CLAIM, [T.PENDING, T.QUEUED], Rule(T.CLAIMED, lease=Lease.EXTEND)),
            (TaskAction.CLAIM, [T.CLAIMED], Rule(T.CLAIMED, Guard.UNHELD, Lease.EXTEND)),
            (TaskAction.LET_GO, [T.CLAIMED], Rule(T.PENDING, Guard.UNHELD, Lease.CLEAR)),
            (TaskAction.REISSUE, [T.CLAIMED], Rule(T.PENDING)),
            (
                TaskAction.STOP,
                [T.PENDING, T.QUEUED, T.CLAIMED],
                Rule(T.PENDING, Guard.CLAIMS_ENDED, Lease.CLEAR),
            ),
            (TaskAction.DROP_MESSAGE, [T.QUEUED], Rule(T.PENDING)),
            (TaskAction.ACCEPT, [T.PENDING, T.QUEUED, T.CLAIMED, T.VERIFYING], Rule(T.DONE)),
            (TaskAction.VERIFY, [T.PENDING, T.QUEUED, T.CLAIMED], Rule(T.VERIFYING)),
        ]
    ),
)

CLAIM_TABLE: Machine[ClaimAction, ClaimState] = Machine(
    "claim",
    ClaimState,
    C.ACTIVE,
    _table(
        [
            (ClaimAction.HEARTBEAT, [C.ACTIVE], Rule(C.ACTIVE, Guard.HELD, Lease.EXTEND)),
            (ClaimAction.RELEASE, [C.ACTIVE], Rule(C.RELEASED)),
            (ClaimAction.EXPIRE, [C.ACTIVE], Rule(C.EXPIRED, Guard.UNHELD)),
            (ClaimAction.FAIL, [C.ACTIVE, C.EXPIRED], Rule(C.RELEASED)),
            (ClaimAction.FINISH, [C.ACTIVE, C.EXPIRED], Rule(C.FINISHED)),
            (ClaimAction.SUPERSEDE, [C.ACTIVE], Rule(C.SUPERSEDED)),
        ]
    ),
)

# The one claim state whose lease holds its task: a live claim is one of these, not lapsed.
HOLDING = ClaimState.ACTIVE
# Tasks are claimed, leases extended and results accepted only while the project runs.
TAKES_WORK = frozenset({ProjectState.RUNNING})
# The scheduler's projects: taken up and not stopped (they cannot be deleted meanwhile).
TRAINING = frozenset({ProjectState.QUEUED, ProjectState.RUNNING})


def is_live(lease: datetime | None, now: datetime) -> bool:
    """Whether a lease holds its row at ``now`` (a task's: some live claim holds the task)."""
    return lease is not None and lease > now
