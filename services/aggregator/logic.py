"""Pure aggregation maths: sample-weighted mean of deltas, applying it, round metrics.

``WeightedMean`` folds deltas one at a time in float64, so closing a round needs memory for
one accumulator and one delta, whatever K is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from daig.weights.schema import NDArrays

# Elements per fold block: the float64 scratch (1 MiB) stays in the CPU's cache, so a fold
# reads the delta and the sums once and writes the sums once, with no full-size scratch going
# through main memory (1.3-2x faster than scaling whole tensors at a time, measured with
# bench/aggregator_throughput.py; much smaller blocks lose it again to per-call overhead).
FOLD_BLOCK = 131072


class WeightedMean:
    """Running sample-weighted mean of weight lists, folded in place in float64.

    Each fold scales a block of the delta into a small reused scratch buffer and adds it to
    the sums; no per-fold allocation.
    """

    def __init__(self) -> None:
        self._sums: list[np.ndarray] | None = None
        self._scratch = np.empty(FOLD_BLOCK, dtype=np.float64)
        self._total = 0

    def add(self, arrays: Sequence[np.ndarray], samples: int) -> None:
        if samples <= 0:
            raise ValueError("a result must be weighted by a positive sample count")
        if self._sums is None:
            self._sums = [np.zeros(np.shape(a), dtype=np.float64) for a in arrays]
        if len(arrays) != len(self._sums):
            raise ValueError(f"expected {len(self._sums)} tensors, got {len(arrays)}")
        weight = float(samples)
        for total, array in zip(self._sums, arrays, strict=True):
            flat_total = total.reshape(-1)
            flat = np.asarray(array).reshape(-1)
            if flat.shape != flat_total.shape:
                raise ValueError(f"expected a tensor of shape {total.shape}, got {np.shape(array)}")
            for start in range(0, flat.size, FOLD_BLOCK):
                stop = min(start + FOLD_BLOCK, flat.size)
                scratch = self._scratch[: stop - start]
                np.multiply(flat[start:stop], weight, out=scratch, dtype=np.float64)
                np.add(flat_total[start:stop], scratch, out=flat_total[start:stop])
        self._total += samples

    @property
    def samples(self) -> int:
        return self._total

    def result(self) -> NDArrays:
        if self._sums is None:
            raise ValueError("no results to average")
        return [total / self._total for total in self._sums]

    def result_with(self, arrays: Sequence[np.ndarray], samples: int) -> NDArrays:
        """The mean as if ``arrays`` were added too, leaving this accumulator unchanged."""
        if self._sums is None:
            return [np.asarray(a, dtype=np.float64) for a in arrays]
        total = self._total + samples
        return [
            (s + np.asarray(a, dtype=np.float64) * samples) / total
            for s, a in zip(self._sums, arrays, strict=True)
        ]

    def result_with_many(self, pairs: Sequence[tuple[Sequence[np.ndarray], int]]) -> NDArrays:
        """The mean as if every ``(delta, samples)`` of ``pairs`` were added too, leaving this
        accumulator unchanged."""
        extra = WeightedMean()
        for arrays, samples in pairs:
            extra.add(arrays, samples)
        if self._sums is None:
            return extra.result()
        if extra._sums is None:
            return self.result()
        total = self._total + extra._total
        return [(s + e) / total for s, e in zip(self._sums, extra._sums, strict=True)]


def aggregate(results: Iterable[tuple[NDArrays, int]]) -> NDArrays:
    """Sample-weighted mean of ``(delta, samples)`` pairs."""
    mean = WeightedMean()
    for arrays, samples in results:
        mean.add(arrays, samples)
    return mean.result()


def apply_delta(weights: Sequence[np.ndarray], delta: Sequence[np.ndarray]) -> NDArrays:
    """``weights + delta``, keeping each tensor's dtype."""
    return [(w.astype(np.float64) + d).astype(w.dtype) for w, d in zip(weights, delta, strict=True)]


def round_metrics(
    histories: Iterable[tuple[dict[str, list[float | None]], int]],
) -> dict[str, float]:
    """Sample-weighted mean of each metric's last-epoch value across the round's results."""
    sums: dict[str, float] = {}
    weights: dict[str, int] = {}
    for history, samples in histories:
        for name, values in history.items():
            last = values[-1] if values else None
            if last is not None and np.isfinite(last):  # None: a NaN/inf the message nulled
                sums[name] = sums.get(name, 0.0) + float(last) * samples
                weights[name] = weights.get(name, 0) + samples
    return {name: sums[name] / weights[name] for name in sorted(sums)}


def delta_norm(delta: Sequence[np.ndarray]) -> float:
    """L2 norm of a whole delta (all tensors as one vector)."""
    return math.sqrt(sum(float(np.square(t, dtype=np.float64).sum()) for t in delta))


def is_norm_outlier(
    norm: float, reference: Sequence[float], max_ratio: float, min_reference: int = 3
) -> bool:
    """True if ``norm`` exceeds ``max_ratio`` x the median of recent accepted norms.

    Off when ``max_ratio`` is 0, and until ``min_reference`` norms are known (a median of
    one or two says little).
    """
    if max_ratio <= 0 or len(reference) < min_reference:
        return False
    return norm > max_ratio * float(np.median(reference))


def exceeds_median(
    norm: float, median: float | None, count: int, max_ratio: float, min_reference: int = 3
) -> bool:
    """``is_norm_outlier`` given the reference's median and size (kept up to date by the
    caller instead of recomputed from every norm)."""
    if max_ratio <= 0 or count < min_reference or median is None:
        return False
    return norm > max_ratio * median
