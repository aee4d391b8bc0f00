"""Checking an uploaded Keras ``.h5`` model by reading its configuration, never executing it.

``inspect_model`` opens the file with h5py, parses the JSON model and training configuration,
walks every object they name against the allow-list, and reads the weight layout. A file that
passes can be loaded by Keras with ``safe_mode`` on a provider; one that fails gets a
``ModelRejected`` whose message names the offending layer or field and says how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from daig.modelfile import allowlist
from daig.modelfile.output import label_facts
from daig.weights.h5weights import H5WeightsError, read_schema
from daig.weights.schema import WeightSchema

MAX_DATASET_BYTES = 4 * 1024**3

Shape = tuple[int | None, ...]


class ModelRejected(ValueError):
    """An uploaded model DAIG will not accept; the message says why and how to fix it."""


@dataclass(frozen=True)
class ModelInfo:
    """What DAIG needs to know about an accepted model."""

    class_name: str
    keras_version: str
    input_shape: Shape  # one row, without the batch dimension; None = any size
    layer_count: int
    optimizer: str
    loss: str
    schema: WeightSchema
    model_config: dict[str, Any]
    training_config: dict[str, Any]

    @property
    def parameters(self) -> int:
        return self.schema.parameters

    def summary(self) -> dict[str, Any]:
        return {
            "class_name": self.class_name,
            "keras_version": self.keras_version,
            "input_shape": list(self.input_shape),
            "layers": self.layer_count,
            "parameters": self.parameters,
            "optimizer": self.optimizer,
            "loss": self.loss,
        } | label_facts(self.model_config, self.training_config.get("loss"))


def inspect_model(path: Path) -> ModelInfo:
    """Validate the model file at ``path`` and describe it, or raise ``ModelRejected``."""
    try:
        with h5py.File(path, "r") as root:
            check_structure(root, path.stat().st_size)
            attrs = {key: root.attrs[key] for key in root.attrs}
    except OSError as exc:
        raise ModelRejected(
            "the model is not an HDF5 file; save your compiled Keras model with "
            "model.save('model.h5')"
        ) from exc
    model_config = _json_attr(
        attrs,
        "model_config",
        "the file has no model configuration "
        "(was it written by save_weights?); save with model.save('model.h5')",
    )
    training_config = _json_attr(
        attrs,
        "training_config",
        "the model is not compiled; call "
        "model.compile(optimizer=..., loss=...) before model.save()",
    )
    check_model_config(model_config)
    check_training_config(training_config)
    try:
        schema = read_schema(path)
    except H5WeightsError as exc:
        raise ModelRejected(f"the model's weights cannot be read: {exc}") from exc
    if schema.parameters == 0:
        raise ModelRejected("the model has no weights to train")
    keras_version = attrs.get("keras_version", b"unknown")
    return ModelInfo(
        class_name=str(model_config.get("class_name")),
        keras_version=keras_version.decode()
        if isinstance(keras_version, bytes)
        else str(keras_version),
        input_shape=input_shape(model_config),
        layer_count=len(model_config.get("config", {}).get("layers", [])),
        optimizer=_name_of(training_config.get("optimizer_config")),
        loss=_name_of(training_config.get("loss")),
        schema=schema,
        model_config=model_config,
        training_config=training_config,
    )


MAX_ATTRIBUTE_BYTES = 16 * 1024 * 1024
MAX_OBJECTS = 100_000


def check_structure(root: h5py.File, file_size: int) -> None:
    """Refuse HDF5 tricks before anything is read: links out of the file, external or
    virtual storage, and datasets or attributes whose declared size is out of bounds."""
    links: list[tuple[str, object]] = []

    def collect(name: str, link: object) -> bool | None:
        # Only collect here: nothing that can raise may run inside h5py's C callback.
        links.append((name, link))
        return True if len(links) > MAX_OBJECTS else None

    root.visititems_links(collect)
    problem = _attributes_problem(root.attrs, "/")
    for seen, (name, link) in enumerate(links, start=1):
        problem = problem or _link_problem(root, name, link, file_size, seen)
    if problem:
        raise ModelRejected(problem)


def _link_problem(
    root: h5py.File, name: str, link: object, file_size: int, seen: int
) -> str | None:
    if seen > MAX_OBJECTS:
        return f"the file holds more than {MAX_OBJECTS:,} objects"
    if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
        return f"'{name}' is a link; models with links are not accepted"
    if not isinstance(link, h5py.HardLink):
        return f"'{name}' is a link of an unknown kind"
    item = root.get(name)
    if isinstance(item, h5py.Dataset):
        if item.external or item.is_virtual:
            return f"dataset '{name}' points outside the file"
        declared = item.size * item.dtype.itemsize
        if declared > MAX_DATASET_BYTES or (item.compression is None and declared > file_size):
            return f"dataset '{name}' declares {declared:,} bytes in a {file_size:,}-byte file"
    return _attributes_problem(item.attrs, name) if item is not None else None


def _attributes_problem(attrs: h5py.AttributeManager, where: str) -> str | None:
    for key in attrs:
        try:
            size = attrs.get_id(key).get_storage_size()
        except RuntimeError:  # HDF5 reports empty attributes as an error
            size = 0
        if size > MAX_ATTRIBUTE_BYTES:
            return f"attribute '{key}' of '{where}' is larger than {MAX_ATTRIBUTE_BYTES:,} bytes"
    return None


def _json_attr(attrs: dict[str, Any], key: str, missing: str) -> dict[str, Any]:
    raw = attrs.get(key)
    if raw is None:
        raise ModelRejected(missing)
    try:
        value = json.loads(raw.decode("utf8") if isinstance(raw, bytes) else str(raw))
    except ValueError as exc:
        raise ModelRejected(f"the file's {key} is not readable JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelRejected(f"the file's {key} is not a JSON object")
    return value


def _name_of(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(
            entry.get("class_name")
            if entry.get("class_name") != "function"
            else entry.get("config")
        )
    return str(entry)


def check_model_config(config: dict[str, Any]) -> None:
    """Refuse any object outside the allow-list anywhere in the model configuration."""
    if config.get("class_name") not in allowlist.MODELS:
        raise ModelRejected(
            f"model class {config.get('class_name')!r} is not accepted; build the model "
            "with keras.Sequential or the functional API (keras.Model(inputs, outputs))"
        )
    _walk(config, "model")


def _walk(node: Any, where: str) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, where)
        return
    if not isinstance(node, dict):
        return
    if "class_name" in node:
        where = _check_object(node, where)
    for key, value in node.items():
        if key in allowlist.FUNCTION_KEYS and (isinstance(value, str) or value is None):
            if value not in allowlist.FUNCTIONS:
                raise ModelRejected(
                    f"{where}: {key} {value!r} is not a built-in Keras function; "
                    "custom functions cannot run on DAIG, use a built-in one"
                )
        else:
            _walk(value, where)


def _check_object(node: dict[str, Any], where: str) -> str:
    class_name = node["class_name"]
    config = node.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    here = f"{where} > {name or class_name}"
    if class_name == "function":
        if config not in allowlist.FUNCTIONS:
            raise ModelRejected(f"{where}: function {config!r} is not a built-in Keras function")
    elif class_name in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        raise ModelRejected(
            f"{here}: {class_name} layers contain Python code and are never accepted; "
            "replace the Lambda with built-in layers"
        )
    elif _builtin_name(class_name) not in allowlist.CLASSES:
        raise ModelRejected(
            f"{here}: {class_name!r} is not a built-in Keras object DAIG accepts; custom or "
            "registered layers cannot run on volunteers' machines, use built-in layers"
        )
    module = node.get("module")
    if module is not None and not str(module).startswith("keras"):
        raise ModelRejected(f"{here}: objects from module {module!r} are not accepted")
    registered = node.get("registered_name")
    if registered not in (None, class_name) and not str(registered).startswith("keras"):
        raise ModelRejected(f"{here}: registered custom object {registered!r} is not accepted")
    return here


def _builtin_name(class_name: Any) -> str:
    """The class name, with tf-keras' ``Custom>`` prefix removed from built-in optimizers only.

    Any other ``Custom>X`` names a registered custom object (even if X is a Keras class name).
    """
    name = str(class_name)
    bare = name.removeprefix(allowlist.KERAS2_OPTIMIZER_PREFIX)
    return bare if bare in allowlist.OPTIMIZERS else name


def check_training_config(config: dict[str, Any]) -> None:
    """Refuse optimizers, losses and metrics outside the allow-list."""
    optimizer = config.get("optimizer_config")
    if not isinstance(optimizer, dict) or "class_name" not in optimizer:
        raise ModelRejected("the model's optimizer is missing; compile with an optimizer")
    optimizer_name = str(optimizer["class_name"]).removeprefix(allowlist.KERAS2_OPTIMIZER_PREFIX)
    if optimizer_name not in allowlist.OPTIMIZERS:
        raise ModelRejected(f"optimizer {optimizer['class_name']!r} is not a built-in optimizer")
    _walk(optimizer, "optimizer")
    loss = config.get("loss")
    if loss is None:
        raise ModelRejected("the model has no loss; compile with loss=...")
    _check_named(loss, allowlist.LOSS_FUNCTIONS | allowlist.LOSS_CLASSES, "loss")
    for key in ("metrics", "weighted_metrics"):
        if config.get(key) is not None:
            _check_named(config[key], allowlist.METRIC_FUNCTIONS | allowlist.METRIC_CLASSES, key)


def _check_named(entry: Any, names: frozenset[str | None], field: str) -> None:
    """A loss or metric field: names, objects, or lists/dicts of them (one per output)."""
    if isinstance(entry, str):
        if entry not in names:
            raise ModelRejected(f"{field} {entry!r} is not a built-in Keras {field.rstrip('s')}")
    elif isinstance(entry, list):
        for item in entry:
            _check_named(item, names, field)
    elif isinstance(entry, dict) and "class_name" in entry:
        _walk(entry, field)
    elif isinstance(entry, dict):
        for item in entry.values():
            _check_named(item, names, field)
    elif entry is not None:
        raise ModelRejected(f"{field} has an unreadable value {entry!r}")


def input_shape(config: dict[str, Any]) -> Shape:
    """The shape of one input row (no batch dimension) the model expects."""
    inner = config.get("config", {})
    layers = inner.get("layers") or []
    shape: Any = None
    if config.get("class_name") == "Sequential":
        if layers:
            first = layers[0].get("config", {})
            shape = first.get("batch_shape") or first.get("batch_input_shape")
        shape = shape or inner.get("build_input_shape")
    else:
        inputs = inner.get("input_layers") or []
        if inputs and isinstance(inputs[0], str):
            inputs = [inputs]
        if len(inputs) != 1:
            raise ModelRejected(
                f"the model has {len(inputs)} inputs; DAIG trains models with exactly one input"
            )
        for layer in layers:
            if layer.get("config", {}).get("name") == inputs[0][0]:
                cfg = layer["config"]
                shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if isinstance(shape, dict):  # Keras 3 may store {"class_name": "__tuple__", "items": [...]}
        shape = shape.get("items")
    if not isinstance(shape, list) or len(shape) < 2:
        raise ModelRejected(
            "the model's input shape is unknown; start the model with keras.Input(shape=...)"
        )
    return tuple(None if s is None else int(s) for s in shape[1:])


def shape_matches(model_shape: Shape, row_shape: tuple[int, ...]) -> bool:
    return len(model_shape) == len(row_shape) and all(
        m is None or m == r for m, r in zip(model_shape, row_shape, strict=True)
    )
