"""Running means of open rounds, folded as results are accepted (a cache, never the truth).

Closing a round with the mean then costs one small step instead of re-reading K deltas. The
blobs stay the source of truth: a running mean is used only if it holds exactly the round's
other accepted results (after a restart, or with several aggregators, it won't, and the
round is recomputed from the blobs). A result is folded in only after its transaction
committed, so a rolled-back acceptance never leaks into a mean.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from daig.weights.schema import NDArrays
from daig_aggregator.logic import WeightedMean

RoundKey = tuple[uuid.UUID, int]


@dataclass
class _Fold:
    mean: WeightedMean = field(default_factory=WeightedMean)
    results: set[uuid.UUID] = field(default_factory=set)


class RoundFolds:
    def __init__(self, max_rounds: int = 64) -> None:
        self._folds: dict[RoundKey, _Fold] = {}
        self._max_rounds = max_rounds

    def add(self, key: RoundKey, result_id: uuid.UUID, delta: NDArrays, samples: int) -> None:
        """Fold a committed accepted result into its round's running mean."""
        fold = self._folds.get(key)
        if fold is None:
            if len(self._folds) >= self._max_rounds:  # bound memory: drop the oldest round
                self._folds.pop(next(iter(self._folds)))
            fold = self._folds[key] = _Fold()
        if result_id not in fold.results:
            fold.mean.add(delta, samples)
            fold.results.add(result_id)

    def mean_with(
        self, key: RoundKey, others: set[uuid.UUID], delta: NDArrays, samples: int
    ) -> NDArrays | None:
        """The round's mean including ``delta``, if the fold holds exactly ``others``."""
        fold = self._folds.get(key)
        if fold is None or fold.results != others:
            return None
        return fold.mean.result_with(delta, samples)

    def mean_with_many(
        self, key: RoundKey, others: set[uuid.UUID], extra: list[tuple[NDArrays, int]]
    ) -> NDArrays | None:
        """The round's mean including the ``extra`` deltas, if the fold holds exactly
        ``others`` (the round's accepted results before them)."""
        fold = self._folds.get(key)
        if fold is None:
            return WeightedMean().result_with_many(extra) if not others else None
        if fold.results != others:
            return None
        return fold.mean.result_with_many(extra)

    def forget(self, key: RoundKey) -> None:
        self._folds.pop(key, None)
