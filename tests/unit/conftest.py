"""Unit-only fixtures: small Keras model files generated once per session, never committed.

Keras 3 models are built in this process. Keras 2 (tf-keras) models are built in a separate
Python process, because tf-keras and Keras 3 must not share one interpreter.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

KERAS2_SCRIPT = r"""
import sys
from pathlib import Path

import tf_keras as k

out = Path(sys.argv[1])

x = k.Input(shape=(8,), name="features")
h = k.layers.Dense(6, activation="relu", name="hidden")(x)
h = k.layers.BatchNormalization(name="norm")(h)
y = k.layers.Dense(1, name="out")(h)
model = k.Model(x, y)
schedule = k.optimizers.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.9)
model.compile(
    optimizer=k.optimizers.SGD(learning_rate=schedule, momentum=0.9),
    loss=k.losses.MeanSquaredError(),
    metrics=["mae", k.metrics.RootMeanSquaredError()],
)
model.save(out / "functional.h5")

model = k.Sequential(
    [k.layers.Dense(3, input_shape=(4,), name="dense"),
     k.layers.Lambda(lambda t: t * 2.0, name="doubler")]
)
model.compile(optimizer="adam", loss="mse")
model.save(out / "lambda.h5")

x = k.Input(shape=(4,), name="features")
y = k.layers.Dense(1, name="out")(x * 2.0)
model = k.Model(x, y)
model.compile(optimizer="adam", loss="mse")
model.save(out / "tfop.h5")

a = k.Input(shape=(3,), name="left")
b = k.Input(shape=(2,), name="right")
y = k.layers.Dense(1, name="out")(k.layers.Concatenate(name="join")([a, b]))
model = k.Model([a, b], y)
model.compile(optimizer="adam", loss="mse")
model.save(out / "two_inputs.h5")
"""


def _keras3_models(out: Path) -> dict[str, Path]:
    import keras

    rng = np.random.default_rng(7)
    paths: dict[str, Path] = {}

    def save(name: str, model: Any, **compile_kwargs: Any) -> None:
        if compile_kwargs:
            model.compile(**compile_kwargs)
        paths[name] = out / f"{name}.h5"
        model.save(paths[name])

    # Every weight distinct and random, so an order mix-up cannot hide behind equal values;
    # BatchNormalization, a frozen layer and a nested model give non-trainable weights.
    x = keras.Input(shape=(8,), name="features")
    h = keras.layers.Dense(6, activation="relu", name="hidden")(x)
    h = keras.layers.BatchNormalization(name="norm")(h)
    h = keras.layers.Dropout(0.1, name="drop")(h)
    frozen = keras.layers.Dense(5, activation="tanh", name="frozen")
    frozen.trainable = False
    h = frozen(h)
    block = keras.Sequential(
        [keras.layers.Dense(4, name="inner_dense"), keras.layers.BatchNormalization(name="bn2")],
        name="block",
    )
    y = keras.layers.Dense(3, activation="softmax", name="out")(block(h))
    model = keras.Model(x, y)
    model.set_weights([rng.standard_normal(w.shape).astype(w.dtype) for w in model.get_weights()])
    save(
        "functional",
        model,
        optimizer=keras.optimizers.RMSprop(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    def dense() -> list[Any]:
        return [keras.Input(shape=(4,)), keras.layers.Dense(2, name="dense")]

    save("uncompiled", keras.Sequential(dense()))

    lam = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")
    save("lambda", keras.Sequential([*dense(), lam]), optimizer="adam", loss="mse")

    @keras.saving.register_keras_serializable(package="Acme")
    class Scale(keras.layers.Layer):
        def call(self, inputs: Any) -> Any:
            return inputs * 2.0

    scaled = keras.Sequential([*dense(), Scale(name="my_scale")])
    save("custom_layer", scaled, optimizer="adam", loss="mse")

    @keras.saving.register_keras_serializable(package="Acme")
    class FancySGD(keras.optimizers.SGD):
        pass

    save("custom_optimizer", keras.Sequential(dense()), optimizer=FancySGD(), loss="mse")

    a = keras.Input(shape=(3,), name="left")
    b = keras.Input(shape=(2,), name="right")
    y = keras.layers.Dense(1, name="out")(keras.layers.Concatenate(name="join")([a, b]))
    save("two_inputs", keras.Model([a, b], y), optimizer="adam", loss="mse")

    # Attention(use_scale=True) owns a scalar (shape ()) weight.
    seq = keras.Input(shape=(5, 4), name="tokens")
    attended = keras.layers.Attention(use_scale=True, name="attend")([seq, seq])
    y = keras.layers.Dense(1, name="out")(
        keras.layers.GlobalAveragePooling1D(name="pool")(attended)
    )
    save("attention", keras.Model(seq, y), optimizer="adam", loss="mse")
    return paths


@pytest.fixture(scope="session")
def keras3_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keras 3 ``.h5`` files: accepted ones and ones the inspector must refuse."""
    return _keras3_models(tmp_path_factory.mktemp("keras3"))


@pytest.fixture(scope="session")
def keras2_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tf-keras ``.h5`` files, written by a separate Python process."""
    out = tmp_path_factory.mktemp("keras2-more")
    done = subprocess.run(
        [sys.executable, "-c", KERAS2_SCRIPT, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {path.stem: path for path in out.glob("*.h5")}


def edit_config(
    source: Path, target: Path, key: str, change: Callable[[dict[str, Any]], None]
) -> Path:
    """Copy a model file and rewrite one of its JSON attributes (``model_config`` etc.)."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as root:
        config = json.loads(root.attrs[key])
        change(config)
        root.attrs[key] = json.dumps(config)
    return target


@pytest.fixture
def edited_model(digits_files: Any, tmp_path: Path) -> Callable[..., Path]:
    """``edited_model(key, change)``: the digits model with one JSON attribute rewritten."""

    def make(key: str, change: Callable[[dict[str, Any]], None]) -> Path:
        return edit_config(digits_files.model, tmp_path / "edited.h5", key, change)

    return make
