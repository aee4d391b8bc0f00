"""Aggregation strategies and the norm gate: what each combines, and what it resists."""

from __future__ import annotations

import numpy as np
import pytest

from daig_aggregator.logic import delta_norm, is_norm_outlier
from daig_aggregator.strategies import (
    ClippedMean,
    CoordinateMedian,
    Mean,
    TrimmedMean,
    make_strategy,
)


def _deltas(values: list[float]) -> list[tuple[list[np.ndarray], int]]:
    return [
        ([np.full((2, 3), v, dtype=np.float32), np.full(4, -v, dtype=np.float32)], 10)
        for v in values
    ]


def test_mean_is_sample_weighted() -> None:
    results = [([np.array([1.0])], 1), ([np.array([4.0])], 3)]
    assert Mean().combine(results)[0] == pytest.approx([3.25])


def test_median_ignores_one_wild_value() -> None:
    combined = CoordinateMedian().combine(_deltas([1.0, 2.0, 3.0, 4.0, 1e6]))
    np.testing.assert_allclose(combined[0], np.full((2, 3), 3.0))
    np.testing.assert_allclose(combined[1], np.full(4, -3.0))


def test_median_is_per_coordinate() -> None:
    results = [
        ([np.array([1.0, 100.0])], 1),
        ([np.array([2.0, -5.0])], 1),
        ([np.array([50.0, 0.0])], 1),
    ]
    np.testing.assert_allclose(CoordinateMedian().combine(results)[0], [2.0, 0.0])


def test_trimmed_mean_drops_the_extremes_at_each_end() -> None:
    combined = TrimmedMean(trim_fraction=0.2).combine(_deltas([-1e6, 1.0, 2.0, 3.0, 1e6]))
    np.testing.assert_allclose(combined[0], np.full((2, 3), 2.0))


def test_trimmed_mean_with_nothing_to_trim_is_the_plain_mean() -> None:
    combined = TrimmedMean(trim_fraction=0.1).combine(_deltas([1.0, 2.0, 6.0]))
    np.testing.assert_allclose(combined[0], np.full((2, 3), 3.0))


def test_clipped_mean_scales_a_huge_update_down_to_the_median_norm() -> None:
    honest = [1.0, 1.0, 1.0, 1.0]
    combined = ClippedMean(clip_factor=1.0).combine(_deltas([*honest, -1000.0]))
    # the attacker's update counts with the norm of an honest one: (4*1 - 1) / 5
    np.testing.assert_allclose(combined[0], np.full((2, 3), 0.6), rtol=1e-6)


def test_mean_collapses_under_the_same_attack() -> None:
    combined = Mean().combine(_deltas([1.0, 1.0, 1.0, 1.0, -1000.0]))
    assert combined[0][0, 0] < -100


def test_make_strategy_by_name() -> None:
    assert isinstance(make_strategy("median"), CoordinateMedian)
    assert make_strategy("trimmed_mean", trim_fraction=0.3).trim_fraction == 0.3  # type: ignore[attr-defined]
    assert make_strategy("clipped_mean", clip_factor=2.0).clip_factor == 2.0  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown aggregation"):
        make_strategy("majority_vote")


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TrimmedMean(trim_fraction=0.5)
    with pytest.raises(ValueError):
        ClippedMean(clip_factor=0)
    with pytest.raises(ValueError):
        CoordinateMedian().combine([])


def test_delta_norm_spans_all_tensors() -> None:
    assert delta_norm([np.array([3.0]), np.array([[4.0]])]) == pytest.approx(5.0)


def test_norm_gate() -> None:
    reference = [1.0, 1.2, 0.9, 1.1]
    assert not is_norm_outlier(5.0, reference, 10.0)
    assert is_norm_outlier(50.0, reference, 10.0)
    assert not is_norm_outlier(50.0, reference, 0.0), "0 switches the gate off"
    assert not is_norm_outlier(50.0, [1.0, 1.0], 10.0), "too little evidence yet"
