"""The label rule (``daig.labels``): values a model can learn, given its loss and last layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daig import labels as labels_module
from daig.labels import (
    LabelValues,
    Loss,
    check_label_array,
    check_labels_meta,
    label_problem,
    loss_of,
    summarize_array,
    summarize_file,
)
from daig.modelfile.output import OutputLayer, output_layer
from daig.npy import read_header
from daig.validation import FileRejected, check_file, check_together

SOFTMAX_10 = OutputLayer("out", 10, "softmax")
SIGMOID_1 = OutputLayer("out", 1, "sigmoid")
SPARSE = Loss("sparse", "sparse_categorical_crossentropy")
CATEGORICAL = Loss("categorical", "categorical_crossentropy")
BINARY = Loss("binary", "binary_crossentropy")


def problem(loss: Loss | None, output: OutputLayer, labels: np.ndarray) -> str | None:
    return label_problem(loss, output, summarize_array(labels), tuple(labels.shape[1:]))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small Keras 3 models with the output layers and loss spellings the rule must read."""
    import keras

    out = tmp_path_factory.mktemp("label-models")
    layers = keras.layers
    paths: dict[str, Path] = {}
    # A linear Dense followed by an Activation layer, and the loss as an object with logits.
    seq = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3), layers.Activation("softmax")])
    seq.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=False))
    # The archive first: saving an .h5 drops the optimizer from a later archive's config.
    paths["seq_categorical_keras"] = out / "seq.keras"
    seq.save(paths["seq_categorical_keras"])
    paths["seq_categorical"] = out / "seq.h5"
    seq.save(paths["seq_categorical"])
    # Functional, sigmoid unit behind a Dropout, binary loss as a string.
    x = keras.Input(shape=(4,))
    y = layers.Dropout(0.1)(layers.Dense(1, activation="sigmoid", name="unit")(x))
    binary = keras.Model(x, y)
    binary.compile(optimizer="adam", loss="binary_crossentropy")
    paths["fn_binary"] = out / "binary.h5"
    binary.save(paths["fn_binary"])
    logits = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(5)])
    logits.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    paths["logits_sparse"] = out / "logits.h5"
    logits.save(paths["logits_sparse"])
    return paths


def save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=False)
    return path


# --- which losses are checked -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "family"),
    [
        ("sparse_categorical_crossentropy", "sparse"),
        ("categorical_crossentropy", "categorical"),
        ("binary_crossentropy", "binary"),
        ("binary_focal_crossentropy", "binary"),
        (["sparse_categorical_crossentropy"], "sparse"),
        (
            {
                "module": "keras.losses",
                "class_name": "SparseCategoricalCrossentropy",
                "config": {"from_logits": True, "ignore_class": None},
            },
            "sparse",
        ),
        ({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}, "categorical"),
        ({"class_name": "BinaryCrossentropy", "config": {"label_smoothing": 0.1}}, "binary"),
        ({"class_name": "function", "config": "binary_crossentropy"}, "binary"),
    ],
)
def test_losses_given_every_way_are_recognized(entry: Any, family: str) -> None:
    loss = loss_of(entry)
    assert loss is not None and loss.family == family


@pytest.mark.parametrize(
    "entry",
    [
        "mse",
        "mean_absolute_error",
        "hinge",
        {"class_name": "MeanSquaredError", "config": {}},
        {"class_name": "SparseCategoricalCrossentropy", "config": {"ignore_class": 255}},
        {"out_a": "sparse_categorical_crossentropy", "out_b": "mse"},  # several outputs
        ["binary_crossentropy", "mse"],
        None,
    ],
)
def test_other_losses_are_not_checked(entry: Any) -> None:
    assert loss_of(entry) is None


def test_unchecked_loss_accepts_any_labels() -> None:
    assert problem(loss_of("mse"), SOFTMAX_10, np.array([-5.5, 63.0, 1e9])) is None


# --- the output layer, read from the saved configuration ----------------------------------------


def test_output_layer_of_the_digits_model(digits_files) -> None:
    meta = check_file("model", digits_files.model).meta
    assert meta["output"] == {"name": "dense_1", "units": 10, "activation": "softmax"}
    assert meta["loss_config"] == "sparse_categorical_crossentropy"


def test_output_layer_behind_an_activation_layer(models) -> None:
    meta = check_file("model", models["seq_categorical"]).meta
    assert (meta["output"]["units"], meta["output"]["activation"]) == (3, "softmax")
    assert loss_of(meta["loss_config"]) == Loss("categorical", "CategoricalCrossentropy")


def test_functional_output_behind_a_dropout(models) -> None:
    output = check_file("model", models["fn_binary"]).meta["output"]
    # Keras numbers layer names per process ("dropout_1" after another model's "dropout").
    assert output["name"].startswith("dropout")
    assert {k: output[k] for k in ("units", "activation")} == {"units": 1, "activation": "sigmoid"}


def test_keras_archive_meta_carries_the_output_and_loss(models) -> None:
    meta = check_file("model", models["seq_categorical_keras"]).meta
    assert meta["format"] == "keras"
    assert meta["output"]["units"] == 3
    assert loss_of(meta["loss_config"]) == Loss("categorical", "CategoricalCrossentropy")


def test_keras2_functional_inbound_notation_is_followed() -> None:
    config = {
        "class_name": "Functional",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "x"}, "inbound_nodes": []},
                {
                    "class_name": "Dense",
                    "config": {"name": "logits", "units": 7, "activation": "linear"},
                    "inbound_nodes": [[["x", 0, 0, {}]]],
                },
                {
                    "class_name": "Softmax",
                    "config": {"name": "probs"},
                    "inbound_nodes": [[["logits", 0, 0, {}]]],
                },
            ],
            "output_layers": [["probs", 0, 0]],
        },
    }
    assert output_layer(config) == OutputLayer("probs", 7, "softmax")


def test_unfollowable_outputs_are_unknown() -> None:
    reshape = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "Dense", "config": {"name": "d", "units": 4}},
                {"class_name": "Reshape", "config": {"name": "r", "target_shape": [2, 2]}},
            ]
        },
    }
    assert output_layer(reshape) is None
    two = {
        "class_name": "Functional",
        "config": {"layers": [{}], "output_layers": [["a", 0, 0], ["b", 0, 0]]},
    }
    assert output_layer(two) is None


# --- the values, summarized in chunks ------------------------------------------------------------


def test_summary_of_a_file_read_in_many_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(labels_module, "CHUNK_VALUES", 7)  # 7 rows a read: 143 reads
    y = np.zeros((1000, 3), dtype=np.float32)
    y[:, 0] = 1
    y[617] = [0, 0.5, 0.5]  # a fraction, not one-hot
    y[800] = [0, 63, 0]
    y[900] = [-2, 0, 1]
    path = save(tmp_path / "y.npy", y)
    with open(path, "rb") as stream:
        header = read_header(stream)
    values = summarize_file(path, header)
    assert values == summarize_array(y)
    assert (values.minimum, values.min_row, values.maximum, values.max_row) == (-2, 900, 63, 800)
    assert values.fraction_row == 617
    assert values.non_binary_row == 617
    assert values.not_one_hot_row == 617
    assert values.non_finite_row is None
    assert LabelValues.from_json(values.to_json()) == values


def test_a_memory_mapped_array_is_checked_in_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(labels_module, "CHUNK_VALUES", 1000)
    y = np.arange(10_000) % 10
    y[9_999] = 63
    mapped = np.load(save(tmp_path / "y.npy", y), mmap_mode="r")
    config = {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}}
    message = check_label_array(config, SOFTMAX_10, mapped)
    assert message is not None and "row 9999 holds 63" in message
    assert check_label_array("mse", SOFTMAX_10, mapped) is None


def test_bool_and_integer_labels_are_summarized() -> None:
    assert summarize_array(np.array([True, False])).non_binary_row is None
    values = summarize_array(np.array([3, 1, 2], dtype=np.uint8))
    assert (values.minimum, values.maximum, values.fraction_row) == (1, 3, None)


# --- sparse categorical: whole numbers in [0, units) --------------------------------------------


def test_sparse_labels_past_the_last_unit_are_refused() -> None:
    labels = np.arange(64) % 64
    message = problem(SPARSE, SOFTMAX_10, labels)
    assert message is not None
    assert "labels go up to 63 but the model's last layer has 10 units" in message
    assert "from 0 to 9" in message and "row 63" in message


def test_sparse_labels_in_range_pass_as_integers_floats_or_a_column() -> None:
    assert problem(SPARSE, SOFTMAX_10, np.arange(10)) is None
    assert problem(SPARSE, SOFTMAX_10, np.arange(10, dtype=np.float32)) is None
    assert problem(SPARSE, SOFTMAX_10, np.arange(10).reshape(10, 1)) is None


def test_sparse_negative_and_fractional_labels_are_refused() -> None:
    assert "go down to -1" in (problem(SPARSE, SOFTMAX_10, np.array([0, -1, 3])) or "")
    message = problem(SPARSE, SOFTMAX_10, np.array([0.0, 2.5]))
    assert message is not None and "row 1" in message and "whole number" in message


def test_sparse_loss_with_one_hot_labels_says_which_loss_fits() -> None:
    message = problem(SPARSE, SOFTMAX_10, np.eye(10)[[1, 2, 3]])
    assert message is not None and "categorical_crossentropy" in message


def test_sparse_loss_on_a_single_unit_points_to_binary() -> None:
    message = problem(SPARSE, SIGMOID_1, np.array([0, 1, 1]))
    assert message is not None and "binary_crossentropy" in message


def test_nan_labels_are_refused() -> None:
    message = problem(SPARSE, SOFTMAX_10, np.array([1.0, np.nan]))
    assert message is not None and "row 1" in message and "NaN" in message


# --- categorical: one-hot rows of width units ---------------------------------------------------


def test_categorical_one_hot_rows_pass() -> None:
    assert problem(CATEGORICAL, SOFTMAX_10, np.eye(10, dtype=np.float32)) is None


def test_categorical_with_class_indices_is_refused() -> None:
    message = problem(CATEGORICAL, SOFTMAX_10, np.arange(10))
    assert message is not None and "to_categorical(labels, 10)" in message


def test_categorical_rows_of_another_width_are_refused() -> None:
    message = problem(CATEGORICAL, SOFTMAX_10, np.eye(64)[:5])
    assert message is not None and "width 64" in message and "10 units" in message


def test_categorical_rows_that_are_not_one_hot_are_refused() -> None:
    y = np.eye(10)[:4]
    y[2, 5] = 1  # two ones
    message = problem(CATEGORICAL, SOFTMAX_10, y)
    assert message is not None and "row 2 is not one-hot" in message


# --- binary: 0 or 1, one per unit -----------------------------------------------------------------


def test_binary_sigmoid_unit_takes_zeros_and_ones() -> None:
    assert problem(BINARY, SIGMOID_1, np.array([0, 1, 1, 0])) is None
    assert problem(BINARY, SIGMOID_1, np.array([[0.0], [1.0]])) is None


def test_binary_labels_other_than_zero_and_one_are_refused() -> None:
    message = problem(BINARY, SIGMOID_1, np.array([0, 1, 2, 63]))
    assert message is not None
    assert "labels go from 0 to 63" in message and "row 2" in message
    assert "sparse_categorical_crossentropy" in message


def test_binary_multi_label_rows_must_match_the_units() -> None:
    four = OutputLayer("out", 4, "sigmoid")
    assert problem(BINARY, four, np.array([[0, 1, 1, 0], [1, 0, 0, 0]])) is None
    assert "4 units" in (problem(BINARY, four, np.array([[0, 1], [1, 0]])) or "")
    assert "4 units" in (problem(BINARY, four, np.array([0, 1, 1])) or "")


# --- through the file checks every side uses ---------------------------------------------


def test_check_together_refuses_labels_past_the_output(digits_files, tmp_path: Path) -> None:
    model = check_file("model", digits_files.model).meta
    y = np.load(digits_files.labels)
    y[5] = 63
    labels = check_file("labels", save(tmp_path / "y.npy", y)).meta
    with pytest.raises(FileRejected, match="labels go up to 63 but the model's last layer has 10"):
        check_together({"model": model, "labels": labels})
    held = check_file("validation_labels", save(tmp_path / "v.npy", y)).meta
    with pytest.raises(FileRejected, match="^validation labels go up to 63"):
        check_together({"model": model, "validation_labels": held})


def test_logits_and_binary_models_are_checked_from_their_files(models, tmp_path: Path) -> None:
    logits = check_file("model", models["logits_sparse"]).meta
    five = check_file("labels", save(tmp_path / "five.npy", np.array([0, 5]))).meta
    assert "has 5 units" in (check_labels_meta(logits, five) or "")
    binary = check_file("model", models["fn_binary"]).meta
    ones = check_file("labels", save(tmp_path / "ones.npy", np.array([0, 1]))).meta
    assert check_labels_meta(binary, ones) is None
    assert check_labels_meta(binary, five) is not None


def test_labels_meta_without_values_is_not_checked(digits_files) -> None:
    """Metadata stored before values were summarized: the API backfills it at start."""
    model = check_file("model", digits_files.model).meta
    assert check_labels_meta(model, {"dtype": "<i8", "shape": [3], "data_offset": 128}) is None
