"""Reading and writing a Keras ``.h5`` model's weights with h5py alone (no Keras, no code).

Keras (2 and 3) stores weights in the legacy HDF5 format under ``model_weights``: the group's
``layer_names`` attribute lists layers in ``model.layers`` order, and each layer group's
``weight_names`` attribute lists that layer's trainable then non-trainable weights. That order
is DAIG's canonical weight order; the provider reproduces it from the loaded model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from daig.weights.schema import NDArrays, TensorSpec, WeightSchema

MAX_PARAMETERS = 500_000_000


class H5WeightsError(ValueError):
    """The file's weights cannot be read or written safely."""


def _decode(name: object) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def _names(node: h5py.Group, key: str) -> list[str]:
    """A list attribute that Keras splits into ``key0``, ``key1``... when it exceeds 64 KB."""
    if key in node.attrs:
        return [_decode(n) for n in node.attrs[key]]
    names: list[str] = []
    chunk = 0
    while f"{key}{chunk}" in node.attrs:
        names.extend(_decode(n) for n in node.attrs[f"{key}{chunk}"])
        chunk += 1
    return names


def _weight_datasets(root: h5py.File | h5py.Group) -> Iterator[tuple[str, h5py.Dataset]]:
    if "model_weights" not in root:
        raise H5WeightsError("the file has no 'model_weights' group; save the model with weights")
    group = root["model_weights"]
    for layer_name in _names(group, "layer_names"):
        layer = group.get(layer_name)
        if not isinstance(layer, h5py.Group):
            raise H5WeightsError(f"layer {layer_name!r} is listed but has no weights group")
        for weight_name in _names(layer, "weight_names"):
            link = layer.get(weight_name, getlink=True)
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
                raise H5WeightsError(f"weight {weight_name!r} is a link; links are not accepted")
            dataset = layer.get(weight_name)
            if not isinstance(dataset, h5py.Dataset):
                raise H5WeightsError(f"weight {weight_name!r} of layer {layer_name!r} is missing")
            if dataset.external or dataset.is_virtual:
                raise H5WeightsError(f"weight {weight_name!r} points outside the file")
            if dataset.dtype.kind != "f":
                raise H5WeightsError(f"weight {weight_name!r} has non-float dtype {dataset.dtype}")
            yield f"{layer_name}/{weight_name}", dataset


def read_schema(path: Path) -> WeightSchema:
    """Shapes and dtypes of the file's weights, without reading their values."""
    with h5py.File(path, "r") as root:
        specs = [(tuple(d.shape), d.dtype) for _, d in _weight_datasets(root)]
    parameters = sum(int(np.prod(shape, dtype=np.int64)) for shape, _ in specs)
    if parameters > MAX_PARAMETERS:
        raise H5WeightsError(f"model has {parameters} parameters; the limit is {MAX_PARAMETERS}")
    return WeightSchema(tuple(TensorSpec(shape, dtype.str) for shape, dtype in specs))


def read_weights(path: Path) -> NDArrays:
    """All weights of the file in canonical order."""
    read_schema(path)  # bounds and safety checks before reading any value
    with h5py.File(path, "r") as root:
        return [np.asarray(dataset[()]) for _, dataset in _weight_datasets(root)]


def write_weights(source: Path, target: Path, arrays: Sequence[np.ndarray]) -> None:
    """Copy the model file ``source`` to ``target`` with its weights replaced by ``arrays``.

    The saved optimizer state is dropped: it belongs to the original weights, and Keras 3
    cannot use it anyway. The model's compile configuration is kept.
    """
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as root:
        datasets = list(_weight_datasets(root))
        if len(datasets) != len(arrays):
            raise H5WeightsError(f"model has {len(datasets)} weights, got {len(arrays)} arrays")
        for (name, dataset), array in zip(datasets, arrays, strict=True):
            if tuple(dataset.shape) != tuple(array.shape):
                raise H5WeightsError(f"{name}: shape {array.shape} != {dataset.shape}")
            dataset[...] = array.astype(dataset.dtype, copy=False)
        if "optimizer_weights" in root:
            del root["optimizer_weights"]
