"""The state machine of projects, tasks and claims, shared by the API, scheduler and aggregator.

``table``: the transition tables and their invariants (pure). ``sql``: the tables as SQL text
for the statements that stay set-wise or run on a raw cursor. ``rows``: every state change of
tasks and claims, and of a project row, written from the tables. Services call these instead
of writing ``UPDATE ... SET state`` themselves.
"""

from daig.states.rows import (
    CLAIM_TASK,
    accept,
    drop_message,
    enter,
    expire_lapsed,
    give_back,
    let_go,
    reissue,
    release,
    settle,
    stop_work,
    verify,
)
from daig.states.table import (
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
    Rule,
    TaskAction,
    is_live,
)

__all__ = [
    "CLAIM_TABLE",
    "CLAIM_TASK",
    "HOLDING",
    "PROJECT_TABLE",
    "TAKES_WORK",
    "TASK_TABLE",
    "TRAINING",
    "ClaimAction",
    "Guard",
    "IllegalTransition",
    "Lease",
    "Machine",
    "ProjectAction",
    "Rule",
    "TaskAction",
    "accept",
    "drop_message",
    "enter",
    "expire_lapsed",
    "give_back",
    "let_go",
    "is_live",
    "reissue",
    "release",
    "settle",
    "stop_work",
    "verify",
]
