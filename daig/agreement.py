"""Whether two results of one task agree: the comparison replication decides by.

Two honest runs of a task train from the same weights, rows and seed (``task_seed``), so
their deltas differ only by floating-point order effects (thread counts) and the delta codec.
A cheat -- no training, a scaled or noisy update, a replayed one, fewer epochs -- is far from
an honest delta in at least one layer. The distance is per layer, relative to the larger of
the two layers' norms, and the worst layer counts: a cheat cannot hide a bad layer behind
good ones. Layers whose updates are both tiny (below ``floor`` of the whole update's norm)
are skipped: relative distances of near-zero updates are noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_TOLERANCE = 0.05  # see bench/README.md, "Replica agreement", for the measurement
FLOOR = 1e-3  # layers with a norm below this share of the whole update's are not compared


def _norm(array: np.ndarray) -> float:
    flat = np.asarray(array, dtype=np.float64).ravel()
    return float(math.sqrt(float(np.dot(flat, flat))))


def relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    """``|a - b| / max(|a|, |b|)``: 0 when equal, 1 against zero, 2 when opposite."""
    scale = max(_norm(a), _norm(b))
    if scale == 0.0:
        return 0.0
    return _norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) / scale


def cosine_distance(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """``1 - cos`` of the two whole updates, flattened (0 when parallel)."""
    fa = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in a])
    fb = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in b])
    na, nb = _norm(fa), _norm(fb)
    if na == 0.0 or nb == 0.0:
        return 0.0 if na == nb else 1.0
    return 1.0 - float(np.dot(fa, fb)) / (na * nb)


def layer_distance(a: Sequence[np.ndarray], b: Sequence[np.ndarray], floor: float = FLOOR) -> float:
    """The largest per-layer ``relative_l2`` of two updates of the same shapes."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return math.inf
    whole = max(math.sqrt(sum(_norm(x) ** 2 for x in a)), math.sqrt(sum(_norm(y) ** 2 for y in b)))
    if whole == 0.0:
        return 0.0
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if max(_norm(x), _norm(y)) < floor * whole:
            continue
        worst = max(worst, relative_l2(x, y))
    return worst


def agree(a: Sequence[np.ndarray], b: Sequence[np.ndarray], tolerance: float) -> bool:
    """Whether two results of one task are the same work, within ``tolerance``."""
    return layer_distance(a, b) <= tolerance
