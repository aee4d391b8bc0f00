"""Making a task's training reproducible in the training child (imports Keras: child only).

Two honest providers must produce (nearly) the same delta for one task, or replication could
not tell an honest provider from a cheat. The child turns on TensorFlow's op determinism once,
and before every task seeds Python, NumPy and TensorFlow (``fit``'s shuffling) and the model's
own seed generators (dropout and other random layers) from the task's seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def enable_op_determinism(tf: Any) -> None:
    """Deterministic kernels for every op that has one (CPU ops all do).

    With determinism on, a random op without a seed is an error: a global seed until the
    first task's own (warm-up and tracing draw random numbers too).
    """
    tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(0)


def seed_task(model: Any, seed: int) -> None:
    """Seed everything random in one task's training from ``seed``."""
    import keras

    keras.utils.set_random_seed(seed)
    for index, generator in enumerate(_seed_generators(model, keras.random.SeedGenerator)):
        # A generator's state advances as the model trains: reset it per task, distinct per
        # generator so two dropout layers do not draw the same masks.
        generator.state.assign(np.array([(seed + index) & 0x7FFFFFFF, 0], dtype="uint32"))


def _seed_generators(model: Any, kind: type) -> list[Any]:
    found: list[Any] = []
    seen: set[int] = set()
    for layer in [model, *model._flatten_layers(include_self=False)]:
        for value in vars(layer).values():
            if isinstance(value, kind) and id(value) not in seen:
                seen.add(id(value))
                found.append(value)
    return found
