"""What TensorFlow costs by itself: memory after ``import tensorflow`` and a plain-Keras fit.

Run in a fresh process (``in_spawned_process(tensorflow_baseline, ...)``), so the training
child's figure in ``bench.big_data`` can be split into TensorFlow's share and DAIG's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.bigdata.dataset import CLASSES, HIDDEN
from bench.bigdata.memory import status_mb


def tensorflow_baseline(features: int, shard_rows: int, batch_size: int) -> dict[str, Any]:
    """In a fresh process: RSS after ``import tensorflow``, then a plain-Keras fit of a shard."""
    stages: dict[str, Any] = {"start": status_mb()}
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    stages["import tensorflow"] = status_mb()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(features,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stages["model built and compiled"] = status_mb()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shard_rows, features), dtype=np.float32)
    y = rng.integers(0, CLASSES, shard_rows)
    stages["one shard in memory"] = status_mb()
    for task in range(3):
        model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
        stages[f"after fit #{task + 1}"] = status_mb()
    return stages
