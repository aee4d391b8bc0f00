"""The aggregator's pure maths: sample-weighted mean of deltas, applying it, round metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daig_aggregator.logic import WeightedMean, aggregate, apply_delta, round_metrics


def random_deltas(count: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
        for _ in range(count)
    ]


def test_weighted_mean_equals_numpy_average() -> None:
    deltas = random_deltas(5)
    samples = [10, 1, 250, 37, 3]
    result = aggregate(zip(deltas, samples, strict=True))
    for index in range(2):
        expected = np.average(
            np.stack([d[index] for d in deltas]).astype(np.float64), axis=0, weights=samples
        )
        np.testing.assert_allclose(result[index], expected, rtol=1e-12)


def test_weighting_is_by_samples_not_by_result_count() -> None:
    small = [np.zeros(2)]
    large = [np.full(2, 3.0)]
    # Plain averaging of the two results would give 1.5.
    np.testing.assert_allclose(aggregate([(small, 1), (large, 2)])[0], [2.0, 2.0])
    np.testing.assert_allclose(aggregate([(small, 100), (large, 100)])[0], [1.5, 1.5])


def test_folding_in_any_order_gives_the_same_mean() -> None:
    deltas = random_deltas(4, seed=1)
    samples = [5, 6, 7, 8]
    forward = aggregate(zip(deltas, samples, strict=True))
    backward = aggregate(zip(reversed(deltas), reversed(samples), strict=True))
    for a, b in zip(forward, backward, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_single_result_is_returned_unchanged() -> None:
    (delta,) = random_deltas(1)
    for ours, original in zip(aggregate([(delta, 17)]), delta, strict=True):
        np.testing.assert_allclose(ours, original, rtol=1e-7)


def test_weighted_mean_counts_samples() -> None:
    mean = WeightedMean()
    for delta, samples in zip(random_deltas(3), [2, 3, 4], strict=True):
        mean.add(delta, samples)
    assert mean.samples == 9


@pytest.mark.parametrize("samples", [0, -3])
def test_non_positive_sample_count_is_refused(samples: int) -> None:
    with pytest.raises(ValueError, match="positive sample count"):
        WeightedMean().add([np.zeros(2)], samples)


def test_tensor_count_mismatch_is_refused() -> None:
    mean = WeightedMean()
    mean.add([np.zeros(2), np.zeros(3)], 1)
    with pytest.raises(ValueError, match="expected 2 tensors, got 1"):
        mean.add([np.zeros(2)], 1)


def test_empty_mean_is_refused() -> None:
    with pytest.raises(ValueError, match="no results"):
        WeightedMean().result()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_apply_delta_keeps_dtype(dtype) -> None:
    weights = [np.ones((2, 2), dtype=dtype), np.zeros(3, dtype=dtype)]
    delta = [np.full((2, 2), 0.5), np.array([1.0, -1.0, 2.0])]
    updated = apply_delta(weights, delta)
    assert [w.dtype for w in updated] == [np.dtype(dtype)] * 2
    np.testing.assert_allclose(updated[0], np.full((2, 2), 1.5))
    np.testing.assert_allclose(updated[1], [1.0, -1.0, 2.0])
    np.testing.assert_array_equal(weights[0], np.ones((2, 2)))  # inputs untouched


def test_apply_delta_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        apply_delta([np.zeros(2)], [np.zeros(2), np.zeros(2)])


def test_round_metrics_weight_the_last_epoch_by_samples() -> None:
    metrics = round_metrics(
        [
            ({"loss": [9.0, 1.0], "accuracy": [0.1, 0.5]}, 10),
            ({"loss": [9.0, 4.0], "accuracy": [0.2, 0.8]}, 30),
        ]
    )
    assert metrics == {
        "accuracy": pytest.approx((0.5 * 10 + 0.8 * 30) / 40),
        "loss": pytest.approx((1.0 * 10 + 4.0 * 30) / 40),
    }
    assert list(metrics) == ["accuracy", "loss"]


def test_round_metrics_skip_non_finite_and_empty_values() -> None:
    metrics = round_metrics(
        [
            ({"loss": [2.0], "val_loss": [math.nan]}, 10),
            ({"loss": [math.inf], "val_loss": [3.0]}, 20),
            ({"loss": [], "val_loss": [5.0]}, 30),
        ]
    )
    # NaN/inf/empty entries neither count in the sum nor in the weights.
    assert metrics == {"loss": 2.0, "val_loss": pytest.approx((3.0 * 20 + 5.0 * 30) / 50)}


def test_round_metrics_skip_values_nulled_in_transit() -> None:
    metrics = round_metrics([({"loss": [3.0, None]}, 10), ({"loss": [1.0, 2.0]}, 5)])
    assert metrics == {"loss": 2.0}


def test_round_metrics_of_nothing_is_empty() -> None:
    assert round_metrics([]) == {}
    assert round_metrics([({"loss": [math.nan]}, 5)]) == {}
