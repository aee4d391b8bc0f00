"""How a round's K accepted deltas become one update: the requestor's choice per project.

``mean`` is the original sample-weighted average, folded one delta at a time (O(model)
memory). The robust ones keep a few broken or malicious providers from steering the model:
``median`` (coordinate-wise), ``trimmed_mean`` (drops the extreme values of each coordinate)
and ``clipped_mean`` (scales every delta down to at most ``clip_factor`` times the round's
median norm, then averages). They need the whole round in memory (K x model).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import numpy as np

from daig.weights.schema import NDArrays
from daig_aggregator.logic import WeightedMean, delta_norm

Results = Iterable[tuple[NDArrays, int]]  # (delta, samples)


class Strategy(ABC):
    """Combines ``(delta, samples)`` pairs into one delta (float64 tensors)."""

    name: str

    @abstractmethod
    def combine(self, results: Results) -> NDArrays: ...


class Mean(Strategy):
    name = "mean"

    def combine(self, results: Results) -> NDArrays:
        mean = WeightedMean()
        for delta, samples in results:
            mean.add(delta, samples)
        return mean.result()


class CoordinateMedian(Strategy):
    name = "median"

    def combine(self, results: Results) -> NDArrays:
        deltas = [delta for delta, _ in results]
        _require(deltas)
        return [
            np.median(np.stack(tensors).astype(np.float64), axis=0)
            for tensors in zip(*deltas, strict=True)
        ]


class TrimmedMean(Strategy):
    name = "trimmed_mean"

    def __init__(self, *, trim_fraction: float) -> None:
        if not 0 <= trim_fraction < 0.5:
            raise ValueError("trim_fraction must be in [0, 0.5)")
        self.trim_fraction = trim_fraction

    def combine(self, results: Results) -> NDArrays:
        deltas = [delta for delta, _ in results]
        _require(deltas)
        cut = math.floor(self.trim_fraction * len(deltas))
        combined = []
        for tensors in zip(*deltas, strict=True):
            ordered = np.sort(np.stack(tensors).astype(np.float64), axis=0)
            combined.append(ordered[cut : len(deltas) - cut].mean(axis=0))
        return combined


class ClippedMean(Strategy):
    name = "clipped_mean"

    def __init__(self, *, clip_factor: float) -> None:
        if clip_factor <= 0:
            raise ValueError("clip_factor must be positive")
        self.clip_factor = clip_factor

    def combine(self, results: Results) -> NDArrays:
        pairs = list(results)
        _require(pairs)
        norms = [delta_norm(delta) for delta, _ in pairs]
        limit = self.clip_factor * float(np.median(norms))
        mean = WeightedMean()
        for (delta, samples), norm in zip(pairs, norms, strict=True):
            scale = 1.0 if norm <= limit or norm == 0 else limit / norm
            mean.add([tensor * scale for tensor in delta], samples)
        return mean.result()


def _require(items: Sequence[object]) -> None:
    if not items:
        raise ValueError("no results to combine")


def make_strategy(name: str, *, trim_fraction: float = 0.2, clip_factor: float = 1.0) -> Strategy:
    """The strategy a project asked for (names are the ``aggregation`` hyperparameter)."""
    if name == "mean":
        return Mean()
    if name == "median":
        return CoordinateMedian()
    if name == "trimmed_mean":
        return TrimmedMean(trim_fraction=trim_fraction)
    if name == "clipped_mean":
        return ClippedMean(clip_factor=clip_factor)
    raise ValueError(f"unknown aggregation {name!r}")
