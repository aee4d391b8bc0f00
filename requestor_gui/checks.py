"""Local checks of the files a requestor picked, before anything is uploaded.

``inspect_files`` reads each file the way the server will (model configuration against the
allow-list, ``.npy`` headers), cross-checks shapes, describes the model layer by layer and
converts object arrays to numeric copies when -- and only when -- the requestor trusts them.
Nothing here imports Keras or unpickles an untrusted file. Blocking: run it in a ``Worker``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from daig.modelfile.archive import is_keras_archive
from daig.npy import ArrayRejected
from daig.trusted import TRUST_EXPLANATION, is_object_array, numeric_copy
from daig.validation import FileRejected, check_file, check_together

# The form's files, in upload order; the validation pair is optional.
KINDS = ("model", "data", "labels", "validation_data", "validation_labels")
REQUIRED = ("model", "data", "labels")
# What the server calls each kind's contents (validation files are data and labels too).
BASE_KIND = {"validation_data": "data", "validation_labels": "labels"}
TITLES = {
    "model": "Model",
    "data": "Training data",
    "labels": "Training labels",
    "validation_data": "Validation data",
    "validation_labels": "Validation labels",
}


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    detail: str
    parameters: int | None


@dataclass
class Inspection:
    """What the files say: per-file summaries and errors, shared problems, the upload paths."""

    summaries: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # across files (shapes, rows)
    object_arrays: list[str] = field(default_factory=list)  # kinds holding dtype=object
    layers: list[Layer] = field(default_factory=list)
    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    upload_paths: dict[str, Path] = field(default_factory=dict)  # numeric copies if converted

    @property
    def missing(self) -> list[str]:
        return [kind for kind in REQUIRED if kind not in self.upload_paths]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.problems and not self.missing

    @property
    def rows(self) -> int | None:
        meta = self.metas.get("data")
        return int(meta["shape"][0]) if meta else None


def inspect_files(paths: dict[str, Path], *, trust: bool, scratch: Path) -> Inspection:
    """Check every picked file; ``trust`` converts object arrays into ``scratch``."""
    found = Inspection()
    for kind in KINDS:
        path = paths.get(kind)
        if path is None:
            continue
        try:
            _inspect_one(found, kind, path, trust=trust, scratch=scratch)
        except (FileRejected, ArrayRejected, OSError) as exc:
            found.errors[kind] = _message(exc)
    _cross_check(found)
    return found


def _inspect_one(found: Inspection, kind: str, path: Path, *, trust: bool, scratch: Path) -> None:
    if kind != "model" and is_object_array(path):
        found.object_arrays.append(kind)
        if not trust:
            raise FileRejected(f"{path.name} cannot be uploaded as it is: {TRUST_EXPLANATION}")
        try:
            path = numeric_copy(path, scratch / f"{kind}.npy")
        except ArrayRejected:
            raise
        except Exception as exc:  # unpickling a broken file fails in many ways
            raise FileRejected(f"{path.name} could not be converted ({exc})") from exc
    checked = check_file(BASE_KIND.get(kind, kind), path)
    found.metas[kind] = checked.meta
    found.upload_paths[kind] = path
    if kind == "model":
        found.summaries[kind] = model_summary(checked.meta)
        found.layers = model_layers(path)
    else:
        converted = " (converted from dtype=object)" if kind in found.object_arrays else ""
        found.summaries[kind] = array_summary(checked.meta) + converted


def _cross_check(found: Inspection) -> None:
    metas = found.metas
    try:
        check_together({k: metas[k] for k in ("model", "data", "labels") if k in metas})
    except FileRejected as exc:
        found.problems.append(_message(exc))
    validation = {"validation_data", "validation_labels"} & set(metas)
    if len(validation) == 1 and not found.errors.keys() & {"validation_data", "validation_labels"}:
        found.problems.append(
            "Validation data and validation labels go together: pick both files or neither."
        )
    pair = {"model": metas["model"]} if "model" in metas else {}
    pair |= {BASE_KIND[k]: metas[k] for k in validation}
    try:
        check_together(pair)
    except FileRejected as exc:
        found.problems.append(f"Validation files: {exc}")
    if "labels" in metas and "validation_labels" in metas:
        train, held = metas["labels"]["shape"][1:], metas["validation_labels"]["shape"][1:]
        if train != held:
            found.problems.append(
                f"Validation labels have rows of shape {tuple(held)} but the training labels "
                f"{tuple(train)}; they must match."
            )


def model_summary(meta: dict[str, Any]) -> str:
    shape = ", ".join("any" if s is None else str(s) for s in meta["input_shape"])
    parameters = meta.get("parameters")
    counted = f"{parameters:,} parameters" if parameters else "parameters counted by the server"
    return (
        f"{meta.get('class_name')} (Keras {meta.get('keras_version')}): {meta.get('layers')} "
        f"layers, {counted}; input ({shape}); optimizer {meta.get('optimizer')}, "
        f"loss {meta.get('loss')}"
    )


def array_summary(meta: dict[str, Any]) -> str:
    shape = tuple(meta["shape"])
    row = f"shape ({', '.join(str(s) for s in shape[1:])})" if shape[1:] else "one value"
    return f"{shape[0]:,} rows, each {row}; {np.dtype(meta['dtype']).name}; array {shape}"


def model_layers(path: Path) -> list[Layer]:
    """The model's layers with their parameter counts (read from the file, never run)."""
    try:
        if is_keras_archive(path):
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
            return [_layer(spec, None) for spec in _layer_specs(config)]
        with h5py.File(path, "r") as root:
            config = json.loads(root.attrs["model_config"])
            counts = _parameter_counts(root)
        return [
            _layer(spec, counts.get(str(spec.get("config", {}).get("name")), 0))
            for spec in _layer_specs(config)
        ]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []  # a summary is a courtesy; the checks above already judged the file


def _layer_specs(config: dict[str, Any]) -> list[dict[str, Any]]:
    layers = config.get("config", {}).get("layers") or []
    return [spec for spec in layers if isinstance(spec, dict)]


def _layer(spec: dict[str, Any], parameters: int | None) -> Layer:
    config = spec.get("config", {}) if isinstance(spec.get("config"), dict) else {}
    details = []
    for key in ("units", "filters", "kernel_size", "pool_size", "rate", "activation"):
        value = config.get(key)
        if value not in (None, "linear"):
            details.append(f"{key} {_plain(value)}")
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if isinstance(shape, list):
        details.append(f"shape {_plain(shape[1:])}")
    return Layer(
        name=str(config.get("name", "?")),
        type=str(spec.get("class_name", "?")),
        detail=", ".join(details),
        parameters=parameters,
    )


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join("any" if v is None else str(v) for v in value) + ")"
    return str(value)


def _parameter_counts(root: h5py.File) -> dict[str, int]:
    weights = root.get("model_weights")
    if not isinstance(weights, h5py.Group):
        return {}
    counts: dict[str, int] = {}
    for name in weights:
        group = weights[name]
        if not isinstance(group, h5py.Group):
            continue
        total = 0

        def add(_: str, item: object) -> None:
            nonlocal total
            if isinstance(item, h5py.Dataset):
                total += int(item.size)

        group.visititems(add)
        counts[name] = total
    return counts


def _message(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    text = text[0].upper() + text[1:] if text else text
    return text if text.endswith(".") else text + "."
