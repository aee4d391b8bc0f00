"""Checks of a project's files, alone and together, with messages that say what to fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daig.modelfile.inspect import inspect_model
from daig.validation import FileRejected, check_file, check_together, describe_model


@pytest.fixture(scope="module")
def metas(digits_files) -> dict[str, dict]:
    return {
        kind: check_file(kind, path).meta
        for kind, path in (
            ("model", digits_files.model),
            ("data", digits_files.data),
            ("labels", digits_files.labels),
        )
    }


def save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=False)
    return path


def test_model_meta(metas) -> None:
    meta = metas["model"]
    assert meta["input_shape"] == [64]
    assert meta["parameters"] == 4810
    assert meta["weight_schema"] == [
        [[64, 64], "<f4"],
        [[64], "<f4"],
        [[64, 10], "<f4"],
        [[10], "<f4"],
    ]
    assert len(meta["schema_hash"]) == 64


def test_data_and_label_meta(metas, digits_files) -> None:
    x = np.load(digits_files.data)
    y = np.load(digits_files.labels)
    assert metas["data"]["shape"] == list(x.shape)
    assert metas["labels"]["shape"] == list(y.shape)
    assert metas["data"]["dtype"] == "<f4"


def test_matching_files_pass_together(metas) -> None:
    check_together(metas)
    check_together({"model": metas["model"]})  # partial sets are checked as far as they go
    check_together({"data": metas["data"], "labels": metas["labels"]})


def test_rejected_model_is_a_file_rejection(keras3_models) -> None:
    with pytest.raises(FileRejected, match="^model rejected: .*Lambda"):
        check_file("model", keras3_models["lambda"])


def test_model_file_that_is_an_array_is_rejected(digits_files) -> None:
    with pytest.raises(FileRejected, match="not an HDF5 file"):
        check_file("model", digits_files.data)


@pytest.mark.parametrize("kind", ["data", "labels"])
def test_object_array_is_rejected_naming_the_file(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[1, 2], [3, "x"]], dtype=object), allow_pickle=True)
    with pytest.raises(FileRejected, match=f"the {kind} file has dtype object"):
        check_file(kind, path)


def test_truncated_array_is_rejected(tmp_path: Path) -> None:
    path = save(tmp_path / "x.npy", np.zeros((100, 8), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FileRejected, match="truncated"):
        check_file("data", path)


def test_model_file_as_data_is_rejected(digits_files) -> None:
    with pytest.raises(FileRejected, match="the data file is not a valid .npy file"):
        check_file("data", digits_files.model)


def test_unknown_kind_is_rejected(digits_files) -> None:
    with pytest.raises(FileRejected, match="unknown file kind 'weights'; use one of model"):
        check_file("weights", digits_files.data)


def test_mismatched_rows_are_rejected(metas, tmp_path: Path) -> None:
    labels = check_file("labels", save(tmp_path / "y.npy", np.zeros(5, dtype=np.int64))).meta
    rows = metas["data"]["shape"][0]
    with pytest.raises(FileRejected) as error:
        check_together({"data": metas["data"], "labels": labels})
    message = str(error.value)
    assert f"data has {rows} rows but labels have 5" in message


def test_mismatched_row_shape_is_rejected(metas, tmp_path: Path) -> None:
    data = check_file("data", save(tmp_path / "x.npy", np.zeros((10, 8, 8), np.float32))).meta
    with pytest.raises(FileRejected) as error:
        check_together({"model": metas["model"], "data": data})
    message = str(error.value)
    assert "each data row has shape (8, 8)" in message
    assert "expects (64)" in message


def test_unknown_dimensions_match_any_size(metas, tmp_path: Path) -> None:
    data = check_file("data", save(tmp_path / "x.npy", np.zeros((10, 7, 3), np.float32))).meta
    model = dict(metas["model"], input_shape=[None, 3])
    check_together({"model": model, "data": data})
    model = dict(metas["model"], input_shape=[None, 4])
    with pytest.raises(FileRejected, match=r"expects \(any, 4\)"):
        check_together({"model": model, "data": data})


def test_describe_model(digits_files) -> None:
    text = describe_model(inspect_model(digits_files.model))
    assert text.startswith("Sequential (Keras 3.")
    assert "4,810 parameters" in text
    assert "input (64)" in text
