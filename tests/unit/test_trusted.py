"""The requestor-side conversion of trusted object arrays (never done by servers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daig.npy import ArrayRejected, read_header
from daig.trusted import is_object_array, numeric_copy


def _object_array(path: Path, rows: list) -> Path:
    array = np.empty(len(rows), dtype=object)
    array[:] = rows
    np.save(path, array, allow_pickle=True)
    return path


def test_object_rows_of_floats_become_float32(tmp_path: Path) -> None:
    source = _object_array(tmp_path / "x.npy", [np.array([0.5, 1.0]), np.array([2.0, 3.5])])
    assert is_object_array(source)
    target = numeric_copy(source, tmp_path / "x-numeric.npy")
    assert not is_object_array(target)
    with open(target, "rb") as stream:
        header = read_header(stream, file_size=target.stat().st_size)
    assert (header.dtype, header.shape) == ("<f4", (2, 2))


def test_integer_labels_become_int64(tmp_path: Path) -> None:
    source = _object_array(tmp_path / "y.npy", [1, 7, 3])
    loaded = np.load(numeric_copy(source, tmp_path / "y-numeric.npy"), allow_pickle=False)
    assert loaded.dtype == np.int64 and loaded.tolist() == [1, 7, 3]


def test_ragged_rows_are_refused(tmp_path: Path) -> None:
    source = _object_array(tmp_path / "ragged.npy", [np.array([1.0]), np.array([1.0, 2.0])])
    with pytest.raises(ArrayRejected, match="different lengths"):
        numeric_copy(source, tmp_path / "never.npy")


def test_strings_are_refused(tmp_path: Path) -> None:
    source = _object_array(tmp_path / "s.npy", ["cat", "dog"])
    with pytest.raises(ArrayRejected, match="not numbers"):
        numeric_copy(source, tmp_path / "never.npy")


def test_numeric_files_are_not_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros((3, 2), dtype=np.float32))
    assert not is_object_array(path)
