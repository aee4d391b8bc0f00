"""Loading checked models with Keras 3 and compiling them from their saved training config.

Covers files saved by Keras 3 and by Keras 2 (tf-keras, whose configs Keras 3 cannot read
back as they are), and the canonical weight order the provider relies on.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from daig.modelfile.inspect import ModelRejected
from daig.modelfile.keras_load import canonical_weights, compile_arguments, load_model
from daig.weights.h5weights import read_weights

# Keras 3 says so about every model tf-keras saved with Dense(input_shape=...).
pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning")

# What tf-keras 2.x writes for model.compile(optimizer=Adam(...), loss=MeanSquaredError(),
# metrics=["accuracy"]), copied from a saved file.
KERAS2_TRAINING_CONFIG = {
    "loss": {
        "class_name": "MeanSquaredError",
        "config": {"reduction": "auto", "name": "mean_squared_error", "fn": "mean_squared_error"},
    },
    "metrics": [
        [
            {
                "class_name": "MeanMetricWrapper",
                "config": {"name": "accuracy", "dtype": "float32", "fn": "categorical_accuracy"},
            }
        ]
    ],
    "weighted_metrics": None,
    "loss_weights": None,
    "optimizer_config": {
        "class_name": "Custom>Adam",
        "config": {
            "name": "Adam",
            "weight_decay": None,
            "clipnorm": None,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "jit_compile": False,
            "is_legacy_optimizer": False,
            "learning_rate": 0.003,
            "beta_1": 0.8,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "amsgrad": False,
        },
    },
}


def small_model():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
    return model


def random_xy(rows: int, features: int | tuple[int, ...], classes: int | None = None):
    rng = np.random.default_rng(0)
    shape = (rows, *features) if isinstance(features, tuple) else (rows, features)
    x = rng.random(shape, dtype=np.float32)
    if classes is None:
        return x, rng.random((rows, 1), dtype=np.float32)
    return x, rng.integers(0, classes, size=rows)


def fit_one_epoch(model, x, y) -> dict[str, list[float]]:
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0).history
    assert history["loss"] and all(np.isfinite(history["loss"]))
    return history


# --- compile_arguments -----------------------------------------------------------------------


def test_keras2_optimizer_is_translated() -> None:
    optimizer = compile_arguments(KERAS2_TRAINING_CONFIG)["optimizer"]
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(optimizer.learning_rate) == pytest.approx(0.003)
    assert optimizer.beta_1 == pytest.approx(0.8)


def test_keras2_metrics_list_of_lists_becomes_accuracy() -> None:
    assert compile_arguments(KERAS2_TRAINING_CONFIG)["metrics"] == ["accuracy"]


def test_keras2_loss_object_with_auto_reduction_is_translated() -> None:
    loss = compile_arguments(KERAS2_TRAINING_CONFIG)["loss"]
    assert isinstance(loss, keras.losses.MeanSquaredError)
    assert loss.reduction != "auto"


def test_translated_keras2_config_compiles_and_fits() -> None:
    model = small_model()
    model.compile(**compile_arguments(KERAS2_TRAINING_CONFIG))
    history = fit_one_epoch(model, *random_xy(32, 4))
    assert "accuracy" in history


def test_keras2_lr_is_renamed_and_schedule_is_built() -> None:
    config = {
        "loss": "mse",
        "optimizer_config": {
            "class_name": "Custom>SGD",
            "config": {
                "momentum": 0.5,
                "lr": {
                    "module": "keras.optimizers.schedules",
                    "class_name": "ExponentialDecay",
                    "config": {
                        "initial_learning_rate": 0.05,
                        "decay_steps": 10,
                        "decay_rate": 0.9,
                        "staircase": False,
                        "name": None,
                    },
                    "registered_name": None,
                },
            },
        },
    }
    optimizer = compile_arguments(config)["optimizer"]
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == pytest.approx(0.5)
    schedule = optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay)
    assert schedule.initial_learning_rate == pytest.approx(0.05)
    # Keras 2's "name": None must not override Keras 3's default name (fit would fail).
    model = small_model()
    model.compile(**compile_arguments(config))
    fit_one_epoch(model, *random_xy(32, 4))


def test_function_loss_and_per_output_losses() -> None:
    optimizer = {"class_name": "Adam", "config": {}}
    single = compile_arguments(
        {"optimizer_config": optimizer, "loss": {"class_name": "function", "config": "mse"}}
    )
    assert single["loss"] == "mse"
    per_output = compile_arguments(
        {
            "optimizer_config": optimizer,
            "loss": {"a": "mse", "b": {"class_name": "Huber", "config": {"delta": 2.0}}},
            "loss_weights": {"a": 1.0, "b": 0.5},
        }
    )
    assert per_output["loss"]["a"] == "mse"
    assert isinstance(per_output["loss"]["b"], keras.losses.Huber)
    assert per_output["loss_weights"] == {"a": 1.0, "b": 0.5}


def test_metric_objects_are_rebuilt() -> None:
    config = {
        "optimizer_config": {"class_name": "Adam", "config": {}},
        "loss": "mse",
        "metrics": [
            [
                {
                    "class_name": "MeanMetricWrapper",
                    "config": {"name": "mae", "dtype": "float32", "fn": "mean_absolute_error"},
                },
                {"class_name": "RootMeanSquaredError", "config": {"name": "rmse"}},
            ]
        ],
    }
    metrics = compile_arguments(config)["metrics"]
    assert metrics[0] == "mae"
    assert isinstance(metrics[1], keras.metrics.RootMeanSquaredError)
    assert metrics[1].name == "rmse"


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"optimizer_config": {"class_name": "Lamb", "config": {}}, "loss": "mse"}, "Lamb"),
        (
            {
                "optimizer_config": {
                    "class_name": "Adam",
                    "config": {"learning_rate": {"class_name": "MySchedule", "config": {}}},
                },
                "loss": "mse",
            },
            "MySchedule",
        ),
        (
            {
                "optimizer_config": {"class_name": "Adam", "config": {}},
                "loss": {"class_name": "MyLoss", "config": {}},
            },
            "MyLoss",
        ),
        (
            {
                "optimizer_config": {"class_name": "Adam", "config": {}},
                "loss": "mse",
                "metrics": [{"class_name": "MyMetric", "config": {}}],
            },
            "MyMetric",
        ),
    ],
)
def test_objects_off_the_allow_list_are_refused(config: dict, named: str) -> None:
    with pytest.raises(ModelRejected, match=named):
        compile_arguments(config)


# --- load_model ------------------------------------------------------------------------------


def test_keras2_sequential_loads_and_fits(keras2_digits_model) -> None:
    model, info = load_model(keras2_digits_model)
    assert info.keras_version.startswith("2.")
    history = fit_one_epoch(model, *random_xy(40, 64, classes=10))
    assert "accuracy" in history


def test_keras2_functional_loads_and_fits(keras2_models) -> None:
    model, _ = load_model(keras2_models["functional"])
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    history = fit_one_epoch(model, *random_xy(40, 8))
    assert set(history) >= {"loss", "mae", "root_mean_squared_error"}


def test_keras3_models_load_and_fit(digits_files, keras3_models) -> None:
    model, _ = load_model(digits_files.model)
    fit_one_epoch(model, *random_xy(40, 64, classes=10))
    model, _ = load_model(keras3_models["functional"])
    fit_one_epoch(model, *random_xy(40, 8, classes=3))


def test_refused_model_is_never_loaded(keras3_models) -> None:
    with pytest.raises(ModelRejected, match="Lambda"):
        load_model(keras3_models["lambda"])


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("keras3_models", "functional"),
        ("keras2_models", "functional"),
        ("keras2_digits_model", None),
    ],
)
def test_canonical_weights_match_the_h5_order(request, fixture: str, name: str | None) -> None:
    files = request.getfixturevalue(fixture)
    path = files[name] if name else files
    model, _ = load_model(path)
    from_keras = [np.asarray(v.numpy()) for v in canonical_weights(model)]
    from_h5 = read_weights(path)
    assert [a.shape for a in from_keras] == [a.shape for a in from_h5]
    for index, (ours, theirs) in enumerate(zip(from_h5, from_keras, strict=True)):
        np.testing.assert_array_equal(ours, theirs, err_msg=f"weight tensor {index}")
