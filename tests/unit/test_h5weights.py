"""Reading and replacing a Keras ``.h5`` model's weights with h5py alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from daig.weights import h5weights
from daig.weights.h5weights import H5WeightsError, read_schema, read_weights, write_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights, encode_weights


def copy(source: Path, tmp_path: Path, name: str = "copy.h5") -> Path:
    target = tmp_path / name
    shutil.copyfile(source, target)
    return target


def random_like(arrays: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays]


def test_read_schema_lists_layers_in_order(digits_files) -> None:
    schema = read_schema(digits_files.model)
    assert [t.shape for t in schema.tensors] == [(64, 64), (64,), (64, 10), (10,)]
    assert {t.dtype for t in schema.tensors} == {"<f4"}
    assert schema == WeightSchema.of(read_weights(digits_files.model))


def test_write_weights_replaces_weights_and_drops_optimizer_state(
    keras3_models, tmp_path: Path
) -> None:
    source = keras3_models["functional"]
    with h5py.File(source, "r") as root:
        assert "optimizer_weights" in root  # so dropping it below is a real change
        training_config = root.attrs["training_config"]
        model_config = root.attrs["model_config"]
    original = read_weights(source)
    replacement = random_like(original)
    target = tmp_path / "trained.h5"

    write_weights(source, target, replacement)

    for ours, written in zip(replacement, read_weights(target), strict=True):
        np.testing.assert_array_equal(ours, written)
    with h5py.File(target, "r") as root:
        assert "optimizer_weights" not in root
        assert root.attrs["training_config"] == training_config
        assert root.attrs["model_config"] == model_config
    for before, after in zip(original, read_weights(source), strict=True):
        np.testing.assert_array_equal(before, after)  # the source file is untouched


def test_written_file_loads_in_keras_with_the_new_weights(keras3_models, tmp_path: Path) -> None:
    from daig.modelfile.keras_load import canonical_weights, load_model

    source = keras3_models["functional"]
    replacement = random_like(read_weights(source), seed=5)
    target = tmp_path / "trained.h5"
    write_weights(source, target, replacement)
    model, _ = load_model(target)
    for ours, loaded in zip(replacement, canonical_weights(model), strict=True):
        np.testing.assert_array_equal(ours, np.asarray(loaded.numpy()))


def test_write_weights_casts_to_the_file_dtype(digits_files, tmp_path: Path) -> None:
    arrays = [a.astype(np.float64) + 1 for a in read_weights(digits_files.model)]
    write_weights(digits_files.model, tmp_path / "out.h5", arrays)
    written = read_weights(tmp_path / "out.h5")
    assert [a.dtype for a in written] == [np.dtype("float32")] * 4
    np.testing.assert_allclose(written[0], arrays[0], rtol=1e-6)


def test_write_weights_refuses_wrong_count(digits_files, tmp_path: Path) -> None:
    arrays = read_weights(digits_files.model)
    with pytest.raises(H5WeightsError, match="4 weights, got 3"):
        write_weights(digits_files.model, tmp_path / "out.h5", arrays[:3])


def test_write_weights_refuses_wrong_shape(digits_files, tmp_path: Path) -> None:
    arrays = read_weights(digits_files.model)
    arrays[2] = np.zeros((10, 64), dtype=np.float32)
    with pytest.raises(H5WeightsError, match="shape"):
        write_weights(digits_files.model, tmp_path / "out.h5", arrays)


def test_missing_model_weights_is_refused(digits_files, tmp_path: Path) -> None:
    path = copy(digits_files.model, tmp_path)
    with h5py.File(path, "r+") as root:
        del root["model_weights"]
    for read in (read_schema, read_weights):
        with pytest.raises(H5WeightsError, match="model_weights"):
            read(path)
    with pytest.raises(H5WeightsError, match="model_weights"):
        write_weights(path, tmp_path / "out.h5", [])


def test_listed_layer_without_group_is_refused(digits_files, tmp_path: Path) -> None:
    path = copy(digits_files.model, tmp_path)
    with h5py.File(path, "r+") as root:
        del root["model_weights"]["dense_1"]
    with pytest.raises(H5WeightsError, match="dense_1"):
        read_schema(path)


def weight_location(path: Path) -> tuple[str, list[str]]:
    """(layer group name, weight names) of the first layer with weights."""

    def text(name: object) -> str:
        return name.decode() if isinstance(name, bytes) else str(name)

    with h5py.File(path, "r") as root:
        group = root["model_weights"]
        for layer in map(text, group.attrs["layer_names"]):
            names = [text(n) for n in group[layer].attrs["weight_names"]]
            if names:
                return layer, names
    raise AssertionError("no weights")


def test_soft_link_weight_is_refused(digits_files, tmp_path: Path) -> None:
    path = copy(digits_files.model, tmp_path)
    layer, (kernel, bias) = weight_location(path)
    with h5py.File(path, "r+") as root:
        group = root["model_weights"][layer]
        del group[kernel]
        group[kernel] = h5py.SoftLink(f"/model_weights/{layer}/{bias}")
    with pytest.raises(H5WeightsError, match="link"):
        read_schema(path)


def test_non_float_weight_is_refused(digits_files, tmp_path: Path) -> None:
    path = copy(digits_files.model, tmp_path)
    layer, (weight, _) = weight_location(path)
    with h5py.File(path, "r+") as root:
        group = root["model_weights"][layer]
        shape = group[weight].shape
        del group[weight]
        group.create_dataset(weight, data=np.zeros(shape, dtype=np.int32))
    with pytest.raises(H5WeightsError, match="non-float"):
        read_schema(path)


def test_too_many_parameters_is_refused(digits_files, monkeypatch) -> None:
    monkeypatch.setattr(h5weights, "MAX_PARAMETERS", 1000)
    with pytest.raises(H5WeightsError, match="4810 parameters"):
        read_schema(digits_files.model)


def test_chunked_name_attributes_are_read(keras3_models, tmp_path: Path) -> None:
    """Keras splits ``layer_names`` into ``layer_names0``, ``layer_names1``... past 64 KB."""
    source = keras3_models["functional"]
    path = copy(source, tmp_path)
    with h5py.File(path, "r+") as root:
        group = root["model_weights"]
        names = group.attrs["layer_names"]
        del group.attrs["layer_names"]
        for index, chunk in enumerate(np.array_split(names, 3)):
            group.attrs[f"layer_names{index}"] = chunk
    for ours, original in zip(read_weights(path), read_weights(source), strict=True):
        np.testing.assert_array_equal(ours, original)


def test_scalar_weight_survives_the_weight_stream(keras3_models) -> None:
    """Attention(use_scale=True) has a shape-() weight; the codec must keep it shape ()."""
    path = keras3_models["attention"]
    schema = read_schema(path)
    assert () in [t.shape for t in schema.tensors]
    arrays = read_weights(path)
    decoded = decode_weights(encode_weights(arrays), schema)
    assert [a.shape for a in decoded] == [t.shape for t in schema.tensors]


def test_keras2_file_weights_are_readable(keras2_digits_model) -> None:
    with h5py.File(keras2_digits_model, "r") as root:
        assert json.loads(root.attrs["training_config"])  # really a compiled Keras 2 file
    assert [t.shape for t in read_schema(keras2_digits_model).tensors] == [
        (64, 64),
        (64,),
        (64, 10),
        (10,),
    ]
