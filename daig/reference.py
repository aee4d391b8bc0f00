"""K-batch synchronous SGD run in one process, without DAIG: the no-fault reference.

The same model file, shards, rounds, hyperparameters and combination rule as the real system,
but sequential and with nothing to go wrong, so a fault run's held-out accuracy can be compared
with what the algorithm gives when every update arrives exactly once. Benchmarks pass their own
``combine`` (e.g. a robust aggregation strategy) and ``tamper`` (a malicious provider).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from daig.hyperparams import Hyperparameters
from daig.modelfile.keras_load import FreshOptimizer, canonical_weights, load_model
from daig.planning import Plan

Delta = list[np.ndarray]
Combine = Callable[[Sequence[tuple[Delta, int]]], Sequence[np.ndarray]]
Tamper = Callable[[int, int, Delta], Delta]  # (round, slot, honest delta) -> sent delta


def weighted_mean(results: Sequence[tuple[Delta, int]]) -> list[np.ndarray]:
    total = sum(samples for _, samples in results)
    sums = [np.zeros(tensor.shape, dtype=np.float64) for tensor in results[0][0]]
    for delta, samples in results:
        for acc, tensor in zip(sums, delta, strict=True):
            acc += tensor.astype(np.float64) * samples
    return [acc / total for acc in sums]


def train(
    model_path: Path,
    x: np.ndarray,
    y: np.ndarray,
    params: Hyperparameters,
    *,
    combine: Combine = weighted_mean,
    tamper: Tamper | None = None,
) -> object:
    """Run every round sequentially; returns the Keras model holding the final weights."""
    model, _ = load_model(model_path)
    optimizer = FreshOptimizer(model)
    variables = canonical_weights(model)
    weights = [np.asarray(v.numpy()) for v in variables]
    plan = Plan(len(x), params.total_tasks, params.task_size, params.passes)
    for round_index in range(plan.rounds):
        results: list[tuple[Delta, int]] = []
        for slot, shard in enumerate(plan.shards(round_index)):
            start, stop = plan.rows(shard)
            for variable, value in zip(variables, weights, strict=True):
                variable.assign(value)
            optimizer.reset()
            model.fit(
                x[start:stop],
                y[start:stop],
                epochs=params.epochs,
                batch_size=params.batch_size,
                verbose=0,
            )
            delta = [np.asarray(v.numpy()) - w for v, w in zip(variables, weights, strict=True)]
            if tamper is not None:
                delta = tamper(round_index, slot, delta)
            results.append((delta, stop - start))
        update = combine(results)
        weights = [
            (w.astype(np.float64) + u).astype(w.dtype) for w, u in zip(weights, update, strict=True)
        ]
    for variable, value in zip(variables, weights, strict=True):
        variable.assign(value)
    return model


def accuracy(model: object, x_test: np.ndarray, y_test: np.ndarray) -> float:
    predictions = np.argmax(model.predict(x_test, verbose=0), axis=1)  # type: ignore[attr-defined]
    return float(np.mean(predictions == y_test))


def reference_accuracy(
    model_path: Path,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: Hyperparameters,
) -> float:
    """Held-out accuracy of fault-free K-batch SGD with the sample-weighted mean."""
    return accuracy(train(model_path, x, y, params), x_test, y_test)
