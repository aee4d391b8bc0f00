"""The outer optimizer: how a round's combined update moves the global weights.

``average`` is the original: ``w += update``. ``momentum`` and ``nesterov`` treat the update as
a descent direction and keep a server-side velocity across rounds, as DiLoCo's outer
optimizer does (Douillard et al., 2023): ``v = mu * v + update``; ``w += lr * v`` (momentum)
or ``w += lr * (mu * v + update)`` (Nesterov). The velocity is stored beside each weights
version so a round close is reproducible and auditable. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from daig.weights.schema import NDArrays


def outer_step(
    weights: Sequence[np.ndarray],
    update: Sequence[np.ndarray],
    velocity: Sequence[np.ndarray] | None,
    *,
    kind: str,
    learning_rate: float,
    momentum: float,
) -> tuple[NDArrays, NDArrays | None]:
    """New weights (in their own dtypes) and the new velocity (None for ``average``)."""
    if kind == "average":
        step = [np.asarray(u, dtype=np.float64) * learning_rate for u in update]
        return _apply(weights, step), None
    if kind not in ("momentum", "nesterov"):
        raise ValueError(f"unknown outer optimizer {kind!r}")
    previous = velocity or [np.zeros(np.shape(u), dtype=np.float64) for u in update]
    new_velocity = [
        momentum * np.asarray(v, dtype=np.float64) + np.asarray(u, dtype=np.float64)
        for v, u in zip(previous, update, strict=True)
    ]
    if kind == "momentum":
        step = [learning_rate * v for v in new_velocity]
    else:
        step = [
            learning_rate * (momentum * v + np.asarray(u, dtype=np.float64))
            for v, u in zip(new_velocity, update, strict=True)
        ]
    return _apply(weights, step), [v.astype(np.float32) for v in new_velocity]


def _apply(weights: Sequence[np.ndarray], step: Sequence[np.ndarray]) -> NDArrays:
    return [(w.astype(np.float64) + s).astype(w.dtype) for w, s in zip(weights, step, strict=True)]
