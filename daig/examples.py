"""The digits example used by the demo, the tests and the benchmarks (no downloads needed).

scikit-learn ships the 8x8 handwritten digits (1,797 images); we split them into training
rows for DAIG and held-out rows for judging the trained model, and build a small MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DigitsFiles:
    model: Path
    data: Path
    labels: Path
    test_data: Path
    test_labels: Path


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test): features scaled to [0, 1], labels as int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(len(x) * (1 - test_fraction))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def build_mlp(keras_module: Any = None, *, hidden: int = 64, learning_rate: float = 0.01) -> Any:
    """A compiled MLP for 64 features and 10 classes (Keras 3 by default, or pass tf_keras)."""
    if keras_module is None:
        import keras

        keras_module = keras
    layers = keras_module.layers
    if keras_module.__name__.startswith("tf_keras"):
        model = keras_module.Sequential(
            [
                layers.Dense(hidden, activation="relu", input_shape=(64,)),
                layers.Dense(10, activation="softmax"),
            ]
        )
    else:
        model = keras_module.Sequential(
            [
                keras_module.Input(shape=(64,)),
                layers.Dense(hidden, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
    model.compile(
        optimizer=keras_module.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def write_digits(directory: Path, keras_module: Any = None, seed: int = 0) -> DigitsFiles:
    """Save the model (.h5) and the train/test arrays (.npy) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = digits_split(seed=seed)
    files = DigitsFiles(
        model=directory / "digits-mlp.h5",
        data=directory / "digits-x.npy",
        labels=directory / "digits-y.npy",
        test_data=directory / "digits-x-test.npy",
        test_labels=directory / "digits-y-test.npy",
    )
    for path, array in (
        (files.data, x_train),
        (files.labels, y_train),
        (files.test_data, x_test),
        (files.test_labels, y_test),
    ):
        np.save(path, array, allow_pickle=False)
    build_mlp(keras_module).save(files.model)
    return files


def held_out_accuracy(model_path: Path, test_data: Path, test_labels: Path) -> float:
    """Accuracy of a downloaded ``.h5`` on held-out rows, loaded the safe way."""
    from daig.modelfile.keras_load import load_model

    model, _ = load_model(model_path)
    x = np.load(test_data, allow_pickle=False)
    y = np.load(test_labels, allow_pickle=False)
    predictions = np.argmax(model.predict(x, verbose=0), axis=1)
    return float(np.mean(predictions == y))
