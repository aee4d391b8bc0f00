"""Checks of a project's files, alone and together; used by the API, the CLI and the GUI.

Every failure is a ``FileRejected`` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daig.modelfile.archive import inspect_archive, is_keras_archive
from daig.modelfile.inspect import ModelInfo, ModelRejected, Shape, inspect_model, shape_matches
from daig.npy import ArrayRejected, NpyHeader, read_header

FILE_KINDS = ("model", "data", "labels")


class FileRejected(ValueError):
    """A project file that DAIG will not accept."""


@dataclass(frozen=True)
class CheckedFile:
    kind: str
    meta: dict[str, Any]


def check_file(kind: str, path: Path) -> CheckedFile:
    """Validate one uploaded file of ``kind`` (model, data or labels)."""
    if kind == "model":
        if is_keras_archive(path):
            try:
                return CheckedFile(kind, inspect_archive(path))
            except ModelRejected as exc:
                raise FileRejected(f"model rejected: {exc}") from exc
        try:
            info = inspect_model(path)
        except ModelRejected as exc:
            raise FileRejected(f"model rejected: {exc}") from exc
        meta = info.summary() | {
            "weight_schema": info.schema.to_json(),
            "schema_hash": info.schema.hash,
        }
        return CheckedFile(kind, meta)
    if kind in ("data", "labels"):
        try:
            with open(path, "rb") as stream:
                header = read_header(stream, file_size=path.stat().st_size, what=f"the {kind} file")
        except ArrayRejected as exc:
            raise FileRejected(str(exc)) from exc
        return CheckedFile(kind, header.to_json())
    raise FileRejected(f"unknown file kind {kind!r}; use one of {', '.join(FILE_KINDS)}")


def model_input_shape(meta: dict[str, Any]) -> Shape:
    return tuple(meta["input_shape"])


def check_together(metas: dict[str, dict[str, Any]]) -> None:
    """Cross-check whichever of model, data and labels are present."""
    data = NpyHeader.from_json(metas["data"]) if "data" in metas else None
    labels = NpyHeader.from_json(metas["labels"]) if "labels" in metas else None
    if data and labels and data.rows != labels.rows:
        raise FileRejected(
            f"data has {data.rows} rows but labels have {labels.rows}; every data row needs "
            "exactly one label row (upload matching files)"
        )
    if data and "model" in metas:
        expected = model_input_shape(metas["model"])
        if not shape_matches(expected, data.row_shape):
            wanted = "(" + ", ".join("any" if s is None else str(s) for s in expected) + ")"
            raise FileRejected(
                f"each data row has shape {data.row_shape} but the model's input expects "
                f"{wanted}; reshape the data (e.g. x.reshape(len(x), ...)) or fix the model's "
                "keras.Input(shape=...)"
            )


def describe_model(info: ModelInfo) -> str:
    shape = ", ".join("any" if s is None else str(s) for s in info.input_shape)
    return (
        f"{info.class_name} (Keras {info.keras_version}), {info.layer_count} layers, "
        f"{info.parameters:,} parameters, input ({shape}), optimizer {info.optimizer}, "
        f"loss {info.loss}"
    )
