"""Pure scheduling rules: how many tasks to publish, when a running task is a straggler."""

from __future__ import annotations

STRAGGLER_FACTOR = 1.5


def dispatch_budget(max_contributors: int, in_flight: int) -> int:
    """Tasks that may be published now without exceeding the cap."""
    return max(0, max_contributors - in_flight)


def straggler_deadline(first_finish_seconds: float | None, floor_seconds: float) -> float | None:
    """Seconds after which a running task is given out again (None: no task finished yet).

    The original DAIG rule: once a task of the round finished in time d, a task still running
    after 1.5*d is re-dispatched -- but never before ``floor_seconds``.
    """
    if first_finish_seconds is None:
        return None
    return max(STRAGGLER_FACTOR * first_finish_seconds, floor_seconds)


def is_straggler(youngest_claim_age: float, deadline: float | None) -> bool:
    """A task is re-issued when even its most recent claim has run past the deadline."""
    return deadline is not None and youngest_claim_age > deadline
