"""Round planning: shard row ranges, rounds per pass, the shards of each round."""

from __future__ import annotations

import math

import pytest

from daig.planning import Plan, round_shards, rounds_per_pass, shard_rows, total_rounds

SIZES = [
    (n, t) for n in (1, 2, 3, 7, 10, 64, 97, 100, 1437, 60_000) for t in range(1, 25) if t <= n
]
SHARDINGS = [(t, k) for t in range(1, 30) for k in range(1, t + 1)]


def test_shards_partition_all_rows_exactly() -> None:
    for rows, shards in SIZES:
        ranges = [shard_rows(i, rows, shards) for i in range(shards)]
        covered = [row for start, stop in ranges for row in range(start, stop)]
        # every row once, in order: no gap, no overlap
        assert covered == list(range(rows)), (rows, shards)


def test_shard_sizes_differ_by_at_most_one() -> None:
    for rows, shards in SIZES:
        sizes = [b - a for a, b in (shard_rows(i, rows, shards) for i in range(shards))]
        assert max(sizes) - min(sizes) <= 1, (rows, shards)
        assert min(sizes) == Plan(rows, shards, 1, 1).smallest_shard(), (rows, shards)


def test_shard_rows_matches_the_documented_formula() -> None:
    assert shard_rows(0, 10, 3) == (0, 3)
    assert shard_rows(1, 10, 3) == (3, 6)
    assert shard_rows(2, 10, 3) == (6, 10)


@pytest.mark.parametrize("shard", [-1, 3, 100])
def test_shard_outside_the_range_is_refused(shard: int) -> None:
    with pytest.raises(ValueError, match="outside 0..2"):
        shard_rows(shard, 10, 3)


def test_rounds_per_pass_is_ceil() -> None:
    for shards, k in SHARDINGS:
        assert rounds_per_pass(shards, k) == math.ceil(shards / k), (shards, k)
        assert total_rounds(shards, k, 3) == 3 * math.ceil(shards / k), (shards, k)


def test_every_round_has_k_distinct_shards() -> None:
    for shards, k in SHARDINGS:
        for r in range(total_rounds(shards, k, 2)):
            chosen = round_shards(r, shards, k)
            # K <= T, so a round never trains a shard twice
            assert len(chosen) == len(set(chosen)) == k, (shards, k, r)
            assert all(0 <= s < shards for s in chosen), (shards, k, r)


def test_every_pass_trains_every_shard() -> None:
    for shards, k in SHARDINGS:
        per_pass = rounds_per_pass(shards, k)
        for p in range(3):
            rounds = range(p * per_pass, (p + 1) * per_pass)
            trained = {s for r in rounds for s in round_shards(r, shards, k)}
            assert trained == set(range(shards)), (shards, k, p)


def test_round_shards_wrap_around() -> None:
    assert round_shards(0, 10, 4) == [0, 1, 2, 3]
    assert round_shards(1, 10, 4) == [4, 5, 6, 7]
    assert round_shards(2, 10, 4) == [8, 9, 0, 1]
    assert round_shards(3, 10, 4) == [2, 3, 4, 5]


def test_plan_combines_the_rules() -> None:
    plan = Plan(total_rows=1437, total_shards=12, task_size=4, passes=2)
    assert plan.rounds == 6
    assert plan.shards(0) == [0, 1, 2, 3]
    assert plan.shards(5) == [8, 9, 10, 11]
    assert plan.rows(11) == (1317, 1437)
    assert plan.smallest_shard() == 119


@pytest.mark.parametrize("round_index", [-1, 6, 99])
def test_plan_refuses_rounds_outside_the_schedule(round_index: int) -> None:
    plan = Plan(total_rows=100, total_shards=12, task_size=4, passes=2)
    with pytest.raises(ValueError, match="outside 0..5"):
        plan.shards(round_index)
