"""Pure aggregation maths: sample-weighted mean of deltas, applying it, round metrics.

``WeightedMean`` folds deltas in float64, so closing a round needs memory for one accumulator
and the deltas being folded, whatever K is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor

import numpy as np

from daig.weights.schema import NDArrays

# Elements per fold block: the float64 scratch (1 MiB) stays in the CPU's cache, so a fold
# reads the delta and the sums once and writes the sums once, with no full-size scratch going
# through main memory (1.3-2x faster than scaling whole tensors at a time, measured with
# bench/aggregator_throughput.py; much smaller blocks lose it again to per-call overhead).
FOLD_BLOCK = 131072
# Elements per task when a fold is split over an executor (16 MiB of sums per task), and the
# fewest elements worth splitting at all.
PARALLEL_PART = 1 << 21
PARALLEL_MIN = 2 * PARALLEL_PART

Weighted = tuple[Sequence[np.ndarray], int]  # (delta, samples)
_Span = tuple[int, int, int]  # (tensor index, first element, end element)


class WeightedMean:
    """Running sample-weighted mean of weight lists, folded in place in float64.

    Each fold scales a block of the deltas into a small reused scratch buffer and adds it to
    the sums; no per-fold allocation. Folding several deltas at once (``add_many``) reads and
    writes the sums once for all of them; the first fold writes the sums instead of adding to
    zeros. Not thread-safe: one thread folds (it may lend the work to an executor, whose tasks
    touch disjoint parts of the sums).
    """

    def __init__(self) -> None:
        self._sums: list[np.ndarray] | None = None  # meaningless while ``_total`` is 0
        self._scratch = np.empty(FOLD_BLOCK, dtype=np.float64)
        self._total = 0

    def add(
        self, arrays: Sequence[np.ndarray], samples: int, *, executor: Executor | None = None
    ) -> None:
        """Fold one delta weighted by ``samples``; see ``add_many`` for ``executor``."""
        self.add_many([(arrays, samples)], executor=executor)

    def add_many(self, pairs: Iterable[Weighted], *, executor: Executor | None = None) -> None:
        """Fold ``(delta, samples)`` pairs in one pass over the sums (all or none of them).

        With an ``executor`` (threads: numpy releases the GIL), a large fold is split into
        parts of the tensors folded in parallel; the result is the same as a serial fold.
        """
        items = list(pairs)
        if not items:
            return
        if self._total == 0:
            self._sums = _sums_for(items[0][0], self._sums)
        assert self._sums is not None
        flats = _flatten(self._sums, items)
        _fold(self._sums, flats, executor, self._scratch, assign=self._total == 0)
        self._total += sum(samples for _, samples in items)

    def clear(self) -> None:
        """Forget every fold, keeping the buffers for the next round of the same model (its
        first fold then writes memory already mapped: no page faults)."""
        self._total = 0

    @property
    def samples(self) -> int:
        return self._total

    def result(self) -> NDArrays:
        if self._sums is None or self._total == 0:
            raise ValueError("no results to average")
        return [total / self._total for total in self._sums]

    def result_with(self, arrays: Sequence[np.ndarray], samples: int) -> NDArrays:
        """The mean as if ``arrays`` were added too, leaving this accumulator unchanged."""
        return self.result_with_many([(arrays, samples)])

    def result_with_many(
        self, pairs: Iterable[Weighted], *, executor: Executor | None = None
    ) -> NDArrays:
        """The mean as if ``pairs`` were added too (the same figures as ``add_many`` then
        ``result``), leaving this accumulator unchanged."""
        items = list(pairs)
        if not items:
            return self.result()
        if self._total == 0 or self._sums is None:
            sums = _sums_for(items[0][0], None)
        else:
            sums = [s.copy() for s in self._sums]
        _fold(sums, _flatten(sums, items), executor, None, assign=self._total == 0)
        total = self._total + sum(samples for _, samples in items)
        for s in sums:
            np.divide(s, total, out=s)
        return sums


_Flat = tuple[list[np.ndarray], float]  # a delta's tensors as flat views, and its weight


def _sums_for(arrays: Sequence[np.ndarray], sums: list[np.ndarray] | None) -> list[np.ndarray]:
    """``sums`` if they fit ``arrays``' shapes, else new (unset) float64 sums that do."""
    shapes = [np.shape(a) for a in arrays]
    if sums is not None and [s.shape for s in sums] == shapes:
        return sums
    return [np.empty(shape, dtype=np.float64) for shape in shapes]


def _flatten(sums: list[np.ndarray], items: list[Weighted]) -> list[_Flat]:
    """Each delta's tensors as flat views, checked against the sums before anything is folded."""
    flats = []
    for arrays, samples in items:
        if samples <= 0:
            raise ValueError("a result must be weighted by a positive sample count")
        if len(arrays) != len(sums):
            raise ValueError(f"expected {len(sums)} tensors, got {len(arrays)}")
        tensors = []
        for total, array in zip(sums, arrays, strict=True):
            if np.shape(array) != total.shape:
                raise ValueError(f"expected a tensor of shape {total.shape}, got {np.shape(array)}")
            tensors.append(np.asarray(array).reshape(-1))
        flats.append((tensors, float(samples)))
    return flats


def _fold(
    sums: list[np.ndarray],
    flats: list[_Flat],
    executor: Executor | None,
    scratch: np.ndarray | None,
    *,
    assign: bool,
) -> None:
    """``sums[i] += sum(weight * delta[i])`` over ``flats`` (``=`` if ``assign``), by blocks."""
    totals = [s.reshape(-1) for s in sums]
    sizes = [t.size for t in totals]
    if executor is None or sum(sizes) < PARALLEL_MIN:
        spans = [(i, 0, n) for i, n in enumerate(sizes)]
        _fold_spans(totals, flats, spans, scratch, assign)
        return
    tasks = [
        executor.submit(_fold_spans, totals, flats, part, None, assign) for part in _parts(sizes)
    ]
    for task in tasks:
        task.result()  # re-raises a worker's error


def _fold_spans(
    totals: list[np.ndarray],
    flats: list[_Flat],
    spans: Iterable[_Span],
    scratch: np.ndarray | None,
    assign: bool,
) -> None:
    """Fold the given element ranges of every delta into ``totals`` (or set them to it)."""
    if scratch is None:
        scratch = np.empty(FOLD_BLOCK, dtype=np.float64)
    spare = np.empty(FOLD_BLOCK, dtype=np.float64) if len(flats) > 1 else scratch
    for index, start, stop in spans:
        for first in range(start, stop, FOLD_BLOCK):
            end = min(first + FOLD_BLOCK, stop)
            block, extra = scratch[: end - first], spare[: end - first]
            tensors, weight = flats[0]
            np.multiply(tensors[index][first:end], weight, out=block, dtype=np.float64)
            for tensors, weight in flats[1:]:
                np.multiply(tensors[index][first:end], weight, out=extra, dtype=np.float64)
                np.add(block, extra, out=block)
            total = totals[index][first:end]
            if assign:  # x + 0.0 == x: the same sums as adding to zeros, one pass less
                np.copyto(total, block)
            else:
                np.add(total, block, out=total)


def _parts(sizes: list[int]) -> list[list[_Span]]:
    """The tensors cut into parts of about ``PARALLEL_PART`` elements (small tensors grouped)."""
    parts: list[list[_Span]] = [[]]
    filled = 0
    for index, size in enumerate(sizes):
        for start in range(0, size, PARALLEL_PART):
            stop = min(start + PARALLEL_PART, size)
            parts[-1].append((index, start, stop))
            filled += stop - start
            if filled >= PARALLEL_PART:
                parts.append([])
                filled = 0
    return [part for part in parts if part]


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
