"""daig.agreement: honest replicas agree, each cheat of issue 14 does not."""

from __future__ import annotations

import math
import uuid

import numpy as np

from daig.agreement import (
    DEFAULT_TOLERANCE,
    agree,
    cosine_distance,
    layer_distance,
    relative_l2,
)
from daig.planning import task_seed


def honest(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((64, 32)).astype(np.float32),
        rng.standard_normal(32).astype(np.float32) * 0.1,
        rng.standard_normal((32, 10)).astype(np.float32),
        rng.standard_normal(10).astype(np.float32) * 0.1,
    ]


def test_identical_updates_agree() -> None:
    assert layer_distance(honest(), honest()) == 0.0
    assert agree(honest(), honest(), DEFAULT_TOLERANCE)


def test_rounding_noise_agrees() -> None:
    a = honest()
    b = [v * (1 + 1e-4) for v in a]
    assert layer_distance(a, b) < 1e-3
    assert agree(a, b, DEFAULT_TOLERANCE)


def test_a_zero_update_is_a_full_distance_away() -> None:
    a = honest()
    assert layer_distance([np.zeros_like(v) for v in a], a) == 1.0


def test_a_scaled_update_is_caught_though_its_direction_is_right() -> None:
    a = honest()
    scaled = [v * 0.1 for v in a]
    assert cosine_distance(a, scaled) < 1e-6  # why cosine alone cannot decide
    assert math.isclose(layer_distance(a, scaled), 0.9, rel_tol=1e-6)
    assert not agree(a, scaled, DEFAULT_TOLERANCE)


def test_noise_with_the_honest_norm_is_caught() -> None:
    assert layer_distance(honest(0), honest(1)) > 1.0


def test_one_bad_layer_among_good_ones_is_caught() -> None:
    a = honest()
    b = [v.copy() for v in a]
    b[2] = np.zeros_like(b[2])
    assert (
        relative_l2(np.concatenate([v.ravel() for v in a]), np.concatenate([v.ravel() for v in b]))
        < 1.0
    )
    assert layer_distance(a, b) == 1.0


def test_near_zero_layers_are_not_compared() -> None:
    a = honest()
    b = [v.copy() for v in a]
    a[3] = np.full(10, 1e-9, dtype=np.float32)
    b[3] = np.full(10, -1e-9, dtype=np.float32)
    assert layer_distance(a, b) == 0.0


def test_different_shapes_never_agree() -> None:
    a = honest()
    assert layer_distance(a, a[:3]) == math.inf
    assert not agree(a, [a[0].T, *a[1:]], DEFAULT_TOLERANCE)


def test_two_zero_updates_agree() -> None:
    zeros = [np.zeros(3, dtype=np.float32)]
    assert layer_distance(zeros, zeros) == 0.0


def test_task_seed_is_fixed_by_the_task_alone() -> None:
    project = uuid.UUID(int=7)
    assert task_seed(project, 3, 4) == task_seed(uuid.UUID(int=7), 3, 4)
    seeds = {task_seed(project, r, s) for r in range(5) for s in range(5)}
    assert len(seeds) == 25
    assert all(0 <= seed < 2**31 for seed in seeds)
