"""Folding deltas fast: several at once, split over an executor, and means with extra deltas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from daig_aggregator import logic
from daig_aggregator.logic import WeightedMean

SHAPES = [(70, 50), (3,), (), (0, 4), (1000,), (20, 20)]


def deltas(count: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [np.asarray(rng.standard_normal(s), dtype=np.float32) for s in SHAPES] for _ in range(count)
    ]


def assert_means_equal(a: list[np.ndarray], b: list[np.ndarray], rtol: float = 1e-12) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype == np.float64
        np.testing.assert_allclose(x, y, rtol=rtol, atol=0)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks and parallel parts small enough that the test model spans several of each."""
    monkeypatch.setattr(logic, "FOLD_BLOCK", 64)
    monkeypatch.setattr(logic, "PARALLEL_PART", 300)
    monkeypatch.setattr(logic, "PARALLEL_MIN", 600)


def serial_mean(pairs) -> WeightedMean:
    mean = WeightedMean()
    for arrays, samples in pairs:
        mean.add(arrays, samples)
    return mean


def test_parallel_fold_equals_serial(small_parts: None) -> None:
    pairs = list(zip(deltas(5), [3, 1, 40, 7, 2], strict=True))
    parallel = WeightedMean()
    with ThreadPoolExecutor(3) as pool:
        for arrays, samples in pairs:
            parallel.add(arrays, samples, executor=pool)
        parallel.add_many(pairs[:2], executor=pool)
    serial = serial_mean(pairs + pairs[:2])
    assert parallel.samples == serial.samples
    assert_means_equal(parallel.result(), serial.result())


def test_parts_cover_every_element_once() -> None:
    sizes = [5, 0, 2_000_000, 3, 4_500_000, 1]
    covered = [np.zeros(n, dtype=np.int64) for n in sizes]
    for part in logic._parts(sizes):
        for index, start, stop in part:
            covered[index][start:stop] += 1
    assert all((c == 1).all() for c in covered)


def test_add_many_equals_repeated_add(small_parts: None) -> None:
    pairs = list(zip(deltas(4, seed=1), [5, 6, 7, 8], strict=True))
    many = WeightedMean()
    many.add_many(pairs[:1])
    many.add_many(pairs[1:])
    assert many.samples == 26
    assert_means_equal(many.result(), serial_mean(pairs).result())


def test_one_delta_folds_exactly_as_before() -> None:
    (arrays,) = deltas(1, seed=2)
    mean = WeightedMean()
    mean.add(arrays, 3)
    for got, original in zip(mean.result(), arrays, strict=True):
        np.testing.assert_array_equal(got, original.astype(np.float64))


def test_read_only_views_are_folded() -> None:
    (arrays,) = deltas(1, seed=3)
    views = [np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape) for a in arrays]
    assert not views[0].flags.writeable
    mean = WeightedMean()
    mean.add(views, 2)
    assert_means_equal(mean.result(), [a.astype(np.float64) for a in arrays])


def test_a_bad_pair_folds_nothing() -> None:
    good, other = deltas(2, seed=4)
    mean = WeightedMean()
    mean.add(good, 1)
    before = mean.result()
    wrong_shape = [*other[:-1], np.zeros((4, 100), np.float32)]
    with pytest.raises(ValueError, match="shape"):
        mean.add_many([(other, 1), (wrong_shape, 1)])
    with pytest.raises(ValueError, match="positive sample count"):
        mean.add_many([(other, 1), (other, 0)])
    assert mean.samples == 1
    assert_means_equal(mean.result(), before, rtol=0)


def test_result_with_many_equals_adding_then_result(small_parts: None) -> None:
    pairs = list(zip(deltas(5, seed=5), [2, 9, 4, 4, 1], strict=True))
    running = serial_mean(pairs[:2])
    before = running.result()
    with ThreadPoolExecutor(2) as pool:
        with_extra = running.result_with_many(pairs[2:], executor=pool)
    added = serial_mean(pairs[:2])
    added.add_many(pairs[2:])
    assert_means_equal(with_extra, added.result(), rtol=0)
    assert running.samples == 11
    assert_means_equal(running.result(), before, rtol=0)  # left unchanged


def test_result_with_many_on_an_empty_mean_and_with_nothing_extra() -> None:
    pairs = list(zip(deltas(2, seed=6), [3, 5], strict=True))
    assert_means_equal(WeightedMean().result_with_many(pairs), serial_mean(pairs).result())
    running = serial_mean(pairs)
    assert_means_equal(running.result_with_many([]), running.result(), rtol=0)
    with pytest.raises(ValueError, match="no results"):
        WeightedMean().result_with_many([])


def test_result_with_is_result_with_many_of_one() -> None:
    first, second = deltas(2, seed=7)
    running = serial_mean([(first, 4)])
    assert_means_equal(
        running.result_with(second, 6), running.result_with_many([(second, 6)]), rtol=0
    )
    (single,) = deltas(1, seed=8)
    for got, original in zip(WeightedMean().result_with(single, 7), single, strict=True):
        np.testing.assert_array_equal(got, original.astype(np.float64))


def test_a_cleared_mean_starts_over_in_its_own_buffers() -> None:
    first, second = deltas(2, seed=9)
    mean = serial_mean([(first, 5)])
    buffers = [id(s) for s in mean._sums or []]
    mean.clear()
    assert mean.samples == 0
    with pytest.raises(ValueError, match="no results"):
        mean.result()
    mean.add(second, 2)
    assert [id(s) for s in mean._sums or []] == buffers
    assert_means_equal(mean.result(), serial_mean([(second, 2)]).result(), rtol=0)
    mean.clear()
    other = [np.ones((2, 2), np.float32)]  # another model: new buffers
    mean.add(other, 1)
    assert_means_equal(mean.result(), [np.ones((2, 2))], rtol=0)
