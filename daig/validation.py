"""Checks of a project's files, alone and together; used by the API, the CLI and the GUI.

Every failure is a ``FileRejected`` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daig.labels import check_labels_meta, summarize_file
from daig.modelfile.archive import inspect_archive, is_keras_archive
from daig.modelfile.inspect import ModelInfo, ModelRejected, Shape, inspect_model, shape_matches
from daig.npy import ArrayRejected, NpyHeader, read_header

FILE_KINDS = ("model", "data", "labels")  # required before start
OPTIONAL_KINDS = ("validation_data", "validation_labels")  # held-out rows for per-round evaluation
ALL_KINDS = FILE_KINDS + OPTIONAL_KINDS
LABEL_KINDS = ("labels", "validation_labels")


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
    if kind in ("data", "labels", *OPTIONAL_KINDS):
        try:
            with open(path, "rb") as stream:
                header = read_header(stream, file_size=path.stat().st_size, what=f"the {kind} file")
        except ArrayRejected as exc:
            raise FileRejected(str(exc)) from exc
        meta = header.to_json()
        if kind in LABEL_KINDS:  # what the values are like, for the check against the model
            meta["values"] = summarize_file(path, header).to_json()
        return CheckedFile(kind, meta)
    raise FileRejected(f"unknown file kind {kind!r}; use one of {', '.join(ALL_KINDS)}")


# Metadata keys added after files could already be stored (issue 15): a stored file whose
# metadata lacks them is read again before the project starts.
ADDED_KEYS = {
    "model": ("output", "loss_config"),
    "labels": ("values",),
    "validation_labels": ("values",),
}


def outdated(kind: str, meta: dict[str, Any]) -> bool:
    """Whether ``meta`` was stored before some of today's checks existed."""
    return any(key not in meta for key in ADDED_KEYS.get(kind, ()))


def refreshed(kind: str, meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """``meta`` with the keys it lacks read from the stored file at ``path``."""
    fresh = check_file(kind, path).meta
    return meta | {key: fresh.get(key) for key in ADDED_KEYS[kind]}


def model_input_shape(meta: dict[str, Any]) -> Shape:
    return tuple(meta["input_shape"])


def check_together(metas: dict[str, dict[str, Any]]) -> None:
    """Cross-check whichever of the project's files are present."""
    arrays = {kind: NpyHeader.from_json(metas[kind]) for kind in metas if kind != "model"}
    for rows_of, labels_of, what in (
        ("data", "labels", ""),
        ("validation_data", "validation_labels", "validation "),
    ):
        data, labels = arrays.get(rows_of), arrays.get(labels_of)
        if data and labels and data.rows != labels.rows:
            raise FileRejected(
                f"{what}data has {data.rows} rows but {what}labels have {labels.rows}; every "
                "data row needs exactly one label row (upload matching files)"
            )
        if data and "model" in metas:
            _check_input_shape(model_input_shape(metas["model"]), data, what)
        if labels and "model" in metas:
            problem = check_labels_meta(metas["model"], metas[labels_of])
            if problem:
                raise FileRejected(f"{what}{problem}")
    for kind in ("data", "labels"):
        ours, theirs = arrays.get(kind), arrays.get(f"validation_{kind}")
        if ours and theirs and ours.row_shape != theirs.row_shape:
            raise FileRejected(
                f"validation {kind} rows have shape {theirs.row_shape} but training {kind} rows "
                f"have {ours.row_shape}; they must match"
            )


def _check_input_shape(expected: Shape, data: NpyHeader, what: str) -> None:
    if not shape_matches(expected, data.row_shape):
        wanted = "(" + ", ".join("any" if s is None else str(s) for s in expected) + ")"
        raise FileRejected(
            f"each {what}data row has shape {data.row_shape} but the model's input expects "
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
