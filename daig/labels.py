"""The one rule for label values a model can learn, given its loss and its output layer.

``summarize_file`` reads a labels ``.npy`` in chunks (any size, constant memory) into a
``LabelValues``: range, whole numbers, 0/1, one-hot. ``label_problem`` compares that with the
model's loss and last layer and returns a sentence saying what is wrong and how to fix it, or
``None``. The API (on upload and at start), ``daig project create`` and the GUI's new-project
form all reach it through ``daig.validation.check_together``, with the summary stored in the
labels file's metadata and the loss and output layer in the model's.

Checked: sparse categorical crossentropy (whole numbers in [0, units)), categorical
crossentropy and its focal variant (one-hot rows of width units), binary crossentropy and its
focal variant (0 or 1, one per unit). Other losses (mse, hinge, ...) are not checked, nor is a
sparse loss with ``ignore_class`` (that class may lie outside the range).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from daig.modelfile.output import OutputLayer
from daig.npy import NpyHeader, rows_from_bytes

CHUNK_VALUES = 1 << 20  # values per read: ~8 MB as float64, whatever the file's size

Family = Literal["sparse", "categorical", "binary"]
_FAMILIES: dict[str, Family] = {
    "sparse_categorical_crossentropy": "sparse",
    "sparsecategoricalcrossentropy": "sparse",
    "categorical_crossentropy": "categorical",
    "categoricalcrossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical",
    "categoricalfocalcrossentropy": "categorical",
    "binary_crossentropy": "binary",
    "binarycrossentropy": "binary",
    "binary_focal_crossentropy": "binary",
    "binaryfocalcrossentropy": "binary",
}


@dataclass(frozen=True)
class Loss:
    """A loss whose labels DAIG checks: its family and the name the requestor wrote."""

    family: Family
    name: str


def loss_of(entry: Any) -> Loss | None:
    """The checked loss named by a saved ``loss`` (string, Keras config dict, one-item list);
    ``None`` for other losses, several outputs, or a sparse loss with ``ignore_class``."""
    if isinstance(entry, list) and len(entry) == 1:
        return loss_of(entry[0])
    if isinstance(entry, str):
        family = _FAMILIES.get(entry.lower())
        return Loss(family, entry) if family else None
    if not isinstance(entry, dict) or "class_name" not in entry:
        return None
    config = entry.get("config")
    if entry["class_name"] == "function":
        return loss_of(config) if isinstance(config, str) else None
    if isinstance(config, dict) and config.get("ignore_class") is not None:
        return None
    name = str(entry["class_name"])
    family = _FAMILIES.get(name.lower())
    return Loss(family, name) if family else None


@dataclass(frozen=True)
class LabelValues:
    """What the values of a labels array are like; rows are 0-based row numbers."""

    minimum: float
    maximum: float
    min_row: int
    max_row: int
    non_finite_row: int | None = None  # first row holding NaN or infinity
    fraction_row: int | None = None  # first row holding a value that is not a whole number
    non_binary_row: int | None = None  # first row holding a value other than 0 and 1
    not_one_hot_row: int | None = None  # first row that is not one 1 and 0s (None for 1-D)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> LabelValues | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(**data)
        except TypeError:  # written by another version: check nothing rather than guess
            return None


class _Summary:
    """Folds chunks of rows into a ``LabelValues``."""

    def __init__(self, row_shape: tuple[int, ...]) -> None:
        self.row_shape = row_shape
        self.minimum, self.maximum = math.inf, -math.inf
        self.min_row = self.max_row = 0
        self.firsts: dict[str, int | None] = dict.fromkeys(
            ("non_finite_row", "fraction_row", "non_binary_row", "not_one_hot_row")
        )

    def add(self, start: int, chunk: np.ndarray) -> None:
        values = chunk.reshape(len(chunk), -1).astype(np.float64)
        finite = np.isfinite(values)
        self._first("non_finite_row", start, ~finite.all(axis=1))
        values = np.where(finite, values, 0.0)
        lows, highs = values.min(axis=1), values.max(axis=1)
        low, high = int(np.argmin(lows)), int(np.argmax(highs))
        if lows[low] < self.minimum:
            self.minimum, self.min_row = float(lows[low]), start + low
        if highs[high] > self.maximum:
            self.maximum, self.max_row = float(highs[high]), start + high
        self._first("fraction_row", start, (values != np.floor(values)).any(axis=1))
        binary = (values == 0) | (values == 1)
        self._first("non_binary_row", start, ~binary.all(axis=1))
        if self.row_shape:
            width = self.row_shape[-1]
            vectors = values.reshape(len(chunk), -1, width)
            one_hot = binary.reshape(vectors.shape).all(axis=2) & (vectors.sum(axis=2) == 1)
            self._first("not_one_hot_row", start, ~one_hot.all(axis=1))

    def _first(self, key: str, start: int, bad_rows: Any) -> None:
        if self.firsts[key] is None and bad_rows.any():
            self.firsts[key] = start + int(np.argmax(bad_rows))

    def result(self) -> LabelValues:
        return LabelValues(self.minimum, self.maximum, self.min_row, self.max_row, **self.firsts)


def _rows_per_chunk(row_shape: tuple[int, ...]) -> int:
    return max(1, CHUNK_VALUES // max(1, math.prod(row_shape)))


def summarize_array(array: np.ndarray) -> LabelValues:
    """Summarize labels held in memory (or memory-mapped), a chunk of rows at a time."""
    summary = _Summary(tuple(array.shape[1:]))
    step = _rows_per_chunk(summary.row_shape)
    for start in range(0, len(array), step):
        summary.add(start, np.asarray(array[start : start + step]))
    return summary.result()


def summarize_file(path: Path, header: NpyHeader) -> LabelValues:
    """Summarize a labels ``.npy`` whose header was checked, reading it in chunks."""
    summary = _Summary(header.row_shape)
    step = _rows_per_chunk(header.row_shape)
    with open(path, "rb") as stream:
        stream.seek(header.data_offset)
        for start in range(0, header.rows, step):
            count = min(step, header.rows - start)
            data = stream.read(count * header.row_bytes)
            summary.add(start, rows_from_bytes(header, data))
    return summary.result()


def label_problem(
    loss: Loss | None,
    output: OutputLayer | None,
    values: LabelValues,
    row_shape: tuple[int, ...],
) -> str | None:
    """Why a model with ``loss`` and ``output`` cannot learn these labels, or ``None``."""
    if loss is None or output is None:
        return None
    if values.non_finite_row is not None:
        return (
            f"label row {values.non_finite_row} holds NaN or infinity; {loss.name} needs "
            "numbers (drop or fix those rows)"
        )
    if loss.family == "sparse":
        return _sparse_problem(loss, output, values, row_shape)
    if loss.family == "categorical":
        return _categorical_problem(loss, output, values, row_shape)
    return _binary_problem(loss, output, values, row_shape)


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _sparse_problem(
    loss: Loss, output: OutputLayer, values: LabelValues, row_shape: tuple[int, ...]
) -> str | None:
    units = output.units
    wanted = f"{loss.name} needs whole-number class indices from 0 to {units - 1}"
    if row_shape and row_shape[-1] == units > 1 and values.not_one_hot_row is None:
        return (
            f"the labels are one-hot rows of width {units}, but {wanted}; compile with "
            "loss='categorical_crossentropy' or upload np.argmax(labels, axis=-1)"
        )
    if values.fraction_row is not None:
        return f"label row {values.fraction_row} holds a value that is not a whole number; {wanted}"
    if values.minimum < 0:
        return (
            f"labels go down to {_num(values.minimum)} (row {values.min_row}) but {wanted}; "
            "shift the labels so the first class is 0"
        )
    if values.maximum >= units:
        hint = (
            " (a single unit is a binary output: compile with loss='binary_crossentropy')"
            if units == 1
            else ""
        )
        return (
            f"labels go up to {_num(values.maximum)} but the model's last layer has {units} "
            f"unit{'s' if units != 1 else ''} (row {values.max_row} holds "
            f"{_num(values.maximum)}); {wanted}: fix the labels or give the last layer "
            f"{int(values.maximum) + 1} units{hint}"
        )
    return None


def _categorical_problem(
    loss: Loss, output: OutputLayer, values: LabelValues, row_shape: tuple[int, ...]
) -> str | None:
    units = output.units
    wanted = f"{loss.name} needs one-hot label rows of width {units} (one 1, the rest 0)"
    if not row_shape:
        return (
            f"each label is a single value but {wanted}; convert them with "
            f"keras.utils.to_categorical(labels, {units}) or compile with "
            "loss='sparse_categorical_crossentropy'"
        )
    if row_shape[-1] != units:
        return (
            f"label rows have width {row_shape[-1]} but the model's last layer has {units} "
            f"units; {wanted}"
        )
    if values.not_one_hot_row is not None:
        return f"label row {values.not_one_hot_row} is not one-hot; {wanted}"
    return None


def _binary_problem(
    loss: Loss, output: OutputLayer, values: LabelValues, row_shape: tuple[int, ...]
) -> str | None:
    units = output.units
    width = row_shape[-1] if row_shape else 1
    if units > 1 and width != units:
        return (
            f"each label row holds {width} value{'s' if width != 1 else ''} but the model's "
            f"last layer has {units} units; {loss.name} needs one 0/1 label per unit: give "
            "the last layer 1 unit with activation='sigmoid', or use "
            "loss='sparse_categorical_crossentropy' for class indices"
        )
    if values.non_binary_row is not None:
        extreme = values.maximum if values.maximum > 1 else values.minimum
        return (
            f"labels go from {_num(values.minimum)} to {_num(values.maximum)} (row "
            f"{values.non_binary_row} holds a value other than 0 and 1) but {loss.name} needs "
            f"labels of 0 or 1{_binary_hint(extreme)}"
        )
    return None


def _binary_hint(extreme: float) -> str:
    if extreme > 1 and extreme == int(extreme):
        return (
            "; for class indices use loss='sparse_categorical_crossentropy' and a last layer "
            f"of at least {int(extreme) + 1} units with activation='softmax'"
        )
    return ""


def check_label_array(loss: Any, output: OutputLayer | None, labels: np.ndarray) -> str | None:
    """The rule on labels at hand (a memory-mapped array is read a chunk at a time); ``loss``
    as Keras saves it (a name or a config dict)."""
    return label_problem(loss_of(loss), output, summarize_array(labels), tuple(labels.shape[1:]))


def check_labels_meta(model_meta: dict[str, Any], labels_meta: dict[str, Any]) -> str | None:
    """``label_problem`` on the metadata DAIG stores for a model and a labels file."""
    values = LabelValues.from_json(labels_meta.get("values"))
    if values is None:
        return None
    return label_problem(
        loss_of(model_meta.get("loss_config")),
        OutputLayer.from_json(model_meta.get("output")),
        values,
        tuple(int(s) for s in labels_meta["shape"][1:]),
    )
