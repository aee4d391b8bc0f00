"""The scheduler's pure rules: the dispatch budget and the straggler deadline."""

from __future__ import annotations

import pytest

from daig_scheduler.logic import dispatch_budget, is_straggler, straggler_deadline


@pytest.mark.parametrize(
    ("cap", "in_flight", "budget"),
    [(4, 0, 4), (4, 1, 3), (4, 4, 0), (4, 6, 0), (1, 0, 1), (10, 9, 1)],
)
def test_dispatch_budget_never_exceeds_the_cap(cap: int, in_flight: int, budget: int) -> None:
    assert dispatch_budget(cap, in_flight) == budget


def test_no_deadline_before_a_task_finished() -> None:
    assert straggler_deadline(None, 30) is None
    assert not is_straggler(10_000, None)


@pytest.mark.parametrize(
    ("first_finish", "floor", "deadline"),
    [(100, 30, 150), (10, 30, 30), (20, 30, 30), (20.0, 0, 30.0), (0, 5, 5)],
)
def test_deadline_is_one_and_a_half_times_the_first_finish_but_not_below_the_floor(
    first_finish: float, floor: float, deadline: float
) -> None:
    assert straggler_deadline(first_finish, floor) == pytest.approx(deadline)


def test_straggler_is_strictly_past_the_deadline() -> None:
    assert not is_straggler(149.9, 150)
    assert not is_straggler(150, 150)
    assert is_straggler(150.1, 150)
