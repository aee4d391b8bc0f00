"""K-batch synchronous SGD run in one process, without DAIG: the no-fault reference.

The same model file, shards, rounds, hyperparameters and sample-weighted mean as the real
system, but sequential and with nothing to go wrong, so a fault run's held-out accuracy can be
compared with what the algorithm gives when every update arrives exactly once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daig.hyperparams import Hyperparameters
from daig.modelfile.keras_load import canonical_weights, compile_arguments, load_model
from daig.planning import Plan


def reference_accuracy(
    model_path: Path,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: Hyperparameters,
) -> float:
    model, info = load_model(model_path)
    variables = canonical_weights(model)
    weights = [np.asarray(v.numpy()) for v in variables]
    plan = Plan(len(x), params.total_tasks, params.task_size, params.passes)
    for round_index in range(plan.rounds):
        sums = [np.zeros(w.shape, dtype=np.float64) for w in weights]
        total = 0
        for shard in plan.shards(round_index):
            start, stop = plan.rows(shard)
            for variable, value in zip(variables, weights, strict=True):
                variable.assign(value)
            model.compile(**compile_arguments(info.training_config))
            model.fit(
                x[start:stop],
                y[start:stop],
                epochs=params.epochs,
                batch_size=params.batch_size,
                verbose=0,
            )
            for acc, variable, w in zip(sums, variables, weights, strict=True):
                acc += (np.asarray(variable.numpy(), dtype=np.float64) - w) * (stop - start)
            total += stop - start
        weights = [(w + acc / total).astype(w.dtype) for w, acc in zip(weights, sums, strict=True)]
    for variable, value in zip(variables, weights, strict=True):
        variable.assign(value)
    predictions = np.argmax(model.predict(x_test, verbose=0), axis=1)
    return float(np.mean(predictions == y_test))
