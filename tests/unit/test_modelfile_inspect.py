"""Checking uploaded ``.h5`` models against the allow-list without executing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from daig.modelfile import allowlist
from daig.modelfile.inspect import (
    ModelRejected,
    check_model_config,
    check_training_config,
    input_shape,
    inspect_model,
    shape_matches,
)


def rejection(path: Path) -> str:
    with pytest.raises(ModelRejected) as error:
        inspect_model(path)
    return str(error.value)


# --- accepted models -------------------------------------------------------------------------


def test_keras3_sequential_is_accepted_and_described(digits_files) -> None:
    info = inspect_model(digits_files.model)
    assert info.class_name == "Sequential"
    assert info.keras_version.startswith("3.")
    assert info.input_shape == (64,)
    assert info.optimizer == "Adam"
    assert info.loss == "sparse_categorical_crossentropy"
    # 64*64 + 64 + 64*10 + 10
    assert info.parameters == 4810
    assert [t.shape for t in info.schema.tensors] == [(64, 64), (64,), (64, 10), (10,)]
    assert info.summary()["input_shape"] == [64]


def test_keras3_functional_is_accepted(keras3_models) -> None:
    info = inspect_model(keras3_models["functional"])
    assert info.class_name == "Functional"
    assert info.input_shape == (8,)
    assert info.optimizer == "RMSprop"
    # hidden 8*6+6, norm 4*6, frozen 6*5+5, block (5*4+4 + 4*4), out 4*3+3
    assert info.parameters == 54 + 24 + 35 + 40 + 15


def test_keras2_sequential_is_accepted(keras2_digits_model) -> None:
    info = inspect_model(keras2_digits_model)
    assert info.class_name == "Sequential"
    assert info.keras_version.startswith("2.")
    assert info.input_shape == (64,)
    assert info.optimizer == "Custom>Adam"
    assert info.parameters == 4810


def test_keras2_functional_is_accepted(keras2_models) -> None:
    info = inspect_model(keras2_models["functional"])
    assert info.class_name == "Functional"
    assert info.keras_version.startswith("2.")
    assert info.input_shape == (8,)
    assert info.optimizer == "Custom>SGD"
    assert info.loss == "MeanSquaredError"
    assert info.parameters == 8 * 6 + 6 + 4 * 6 + 6 + 1


# --- refused models --------------------------------------------------------------------------


def test_uncompiled_model_is_refused(keras3_models) -> None:
    assert "not compiled" in rejection(keras3_models["uncompiled"])


def test_keras3_lambda_layer_is_refused_by_name(keras3_models) -> None:
    message = rejection(keras3_models["lambda"])
    assert "doubler" in message
    assert "Lambda" in message


def test_keras2_lambda_layer_is_refused_by_name(keras2_models) -> None:
    message = rejection(keras2_models["lambda"])
    assert "doubler" in message
    assert "Lambda" in message


def test_keras2_tf_op_lambda_is_refused(keras2_models) -> None:
    assert "TFOpLambda" in rejection(keras2_models["tfop"])


def test_registered_custom_layer_is_refused_by_name(keras3_models) -> None:
    message = rejection(keras3_models["custom_layer"])
    assert "my_scale" in message
    assert "Acme>Scale" in message


def test_non_hdf5_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"this is a text file, not HDF5\n" * 10)
    assert "not an HDF5 file" in rejection(path)


def test_hdf5_without_model_config_is_refused(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "weights-only.h5"
    with h5py.File(path, "w") as root:
        root.create_group("model_weights")
    assert "no model configuration" in rejection(path)


def test_keras3_model_with_two_inputs_is_refused(keras3_models) -> None:
    assert "2 inputs" in rejection(keras3_models["two_inputs"])


def test_keras2_model_with_two_inputs_is_refused(keras2_models) -> None:
    assert "2 inputs" in rejection(keras2_models["two_inputs"])


def test_unknown_activation_string_is_refused(edited_model) -> None:
    def evil(config: dict) -> None:
        config["config"]["layers"][1]["config"]["activation"] = "mystery_activation"

    message = rejection(edited_model("model_config", evil))
    assert "mystery_activation" in message
    assert "dense" in message  # the layer's name
    assert "activation" in message


def test_custom_prefixed_layer_is_refused(edited_model) -> None:
    # tf-keras writes built-in optimizers as "Custom>Adam"; the prefix must not whitelist layers.
    def custom(config: dict) -> None:
        config["config"]["layers"][1]["class_name"] = "Custom>Dense"

    assert "Custom>Dense" in rejection(edited_model("model_config", custom))


def test_registered_custom_optimizer_is_refused(keras3_models) -> None:
    assert "Acme>FancySGD" in rejection(keras3_models["custom_optimizer"])


def test_optimizer_off_the_allow_list_is_refused(edited_model) -> None:
    def lamb(config: dict) -> None:
        config["optimizer_config"]["class_name"] = "Lamb"

    message = rejection(edited_model("training_config", lamb))
    assert "optimizer" in message
    assert "Lamb" in message


def test_unknown_loss_is_refused(edited_model) -> None:
    def loss(config: dict) -> None:
        config["loss"] = "my_loss"

    message = rejection(edited_model("training_config", loss))
    assert "loss" in message
    assert "my_loss" in message


def test_unknown_metric_is_refused(edited_model) -> None:
    def metric(config: dict) -> None:
        config["metrics"] = ["accuracy", "my_metric"]

    assert "my_metric" in rejection(edited_model("training_config", metric))


def test_unreadable_training_config_is_refused(digits_files, tmp_path: Path) -> None:
    import shutil

    import h5py

    path = tmp_path / "broken.h5"
    shutil.copyfile(digits_files.model, path)
    with h5py.File(path, "r+") as root:
        root.attrs["training_config"] = "{not json"
    assert "training_config is not readable JSON" in rejection(path)


def test_model_without_weights_group_is_refused(digits_files, tmp_path: Path) -> None:
    import shutil

    import h5py

    path = tmp_path / "no-weights.h5"
    shutil.copyfile(digits_files.model, path)
    with h5py.File(path, "r+") as root:
        del root["model_weights"]
    assert "model_weights" in rejection(path)


# --- the config checks on their own ---------------------------------------------------------


def test_object_from_foreign_module_is_refused() -> None:
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "Dense", "module": "evil.layers", "config": {"name": "d"}},
            ]
        },
    }
    with pytest.raises(ModelRejected, match="evil.layers"):
        check_model_config(config)


def test_model_class_off_the_allow_list_is_refused() -> None:
    with pytest.raises(ModelRejected, match="MyModel"):
        check_model_config({"class_name": "MyModel", "config": {}})


def test_missing_optimizer_is_refused() -> None:
    with pytest.raises(ModelRejected, match="optimizer is missing"):
        check_training_config({"loss": "mse"})


def test_missing_loss_is_refused() -> None:
    with pytest.raises(ModelRejected, match="no loss"):
        check_training_config({"optimizer_config": {"class_name": "Adam", "config": {}}})


def test_every_allow_listed_optimizer_passes_with_keras2_prefix() -> None:
    for name in sorted(allowlist.OPTIMIZERS):
        check_training_config(
            {"optimizer_config": {"class_name": f"Custom>{name}", "config": {}}, "loss": "mse"}
        )


def test_input_shape_reads_keras3_tuple_encoding() -> None:
    config = {
        "class_name": "Functional",
        "config": {
            "input_layers": ["x", 0, 0],
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {
                        "name": "x",
                        "batch_shape": {"class_name": "__tuple__", "items": [None, 28, 28]},
                    },
                }
            ],
        },
    }
    assert input_shape(config) == (28, 28)


def test_input_shape_unknown_is_refused() -> None:
    with pytest.raises(ModelRejected, match="input shape is unknown"):
        input_shape({"class_name": "Sequential", "config": {"layers": []}})


def test_shape_matches() -> None:
    assert shape_matches((None, 3), (7, 3))
    assert shape_matches((64,), (64,))
    assert not shape_matches((64,), (63,))
    assert not shape_matches((8, 8), (64,))


def test_attention_layer_is_refused_at_upload(keras3_models) -> None:
    """Keras 3.15 cannot load its own Attention layer from .h5: say so before any provider tries."""
    with pytest.raises(ModelRejected, match="attend.*'Attention' is not a built-in Keras object"):
        inspect_model(keras3_models["attention"])
