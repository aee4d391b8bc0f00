"""Accepted update norms of recent rounds, kept in memory by the aggregator that owns them.

The norm gate compares each new delta's norm with the median of the current and previous
rounds' accepted norms: thousands of values with a large K, too many to read for every batch.
The cache is only a shortcut, checked against the truth each time: a round's list is used
only if it holds as many norms as the round's own counter says it accepted (which the
recording transaction keeps), so after a restart, a take-over by another aggregator or a
rolled-back batch it is read again from the database.
"""

from __future__ import annotations

import bisect
import uuid
from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy.orm import Session

from daig_aggregator.batch_rows import accepted_norms

RoundKey = tuple[uuid.UUID, int]


class NormCache:
    def __init__(self, max_rounds: int = 256) -> None:
        self._norms: OrderedDict[RoundKey, list[float]] = OrderedDict()
        self._max_rounds = max_rounds

    def get(self, session: Session, key: RoundKey, accepted: int) -> list[float]:
        """The round's accepted norms (a copy), read from the database unless cached exactly."""
        cached = self._norms.get(key)
        if cached is not None and len(cached) == accepted:
            return list(cached)
        norms = accepted_norms(session, *key)
        if len(norms) == accepted:
            self._norms[key] = list(norms)
            while len(self._norms) > self._max_rounds:
                self._norms.popitem(last=False)
        return norms

    def add(self, key: RoundKey, norm: float) -> None:
        """A norm accepted by a committed batch."""
        if key in self._norms:
            self._norms[key].append(norm)


class SortedNorms:
    """Norms kept sorted as they are added, so the median is read, not recomputed."""

    def __init__(self, norms: Iterable[float]) -> None:
        self._sorted = sorted(norms)

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, norm: float) -> None:
        bisect.insort(self._sorted, norm)

    def median(self) -> float | None:
        size = len(self._sorted)
        if size == 0:
            return None
        middle = size // 2
        if size % 2:
            return self._sorted[middle]
        return (self._sorted[middle - 1] + self._sorted[middle]) / 2
