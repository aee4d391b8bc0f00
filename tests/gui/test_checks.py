"""Local checks of the picked files, as the new-project form runs them (no Qt, no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from requestor_gui.checks import inspect_files


@pytest.fixture
def files(digits_files) -> dict[str, Path]:
    return {"model": digits_files.model, "data": digits_files.data, "labels": digits_files.labels}


def test_the_digits_files_pass_and_are_described(files, tmp_path: Path) -> None:
    found = inspect_files(files, trust=False, scratch=tmp_path)
    assert found.ok, (found.errors, found.problems)
    assert "4,810 parameters" in found.summaries["model"]
    assert "input (64)" in found.summaries["model"]
    assert found.summaries["data"].startswith("1,437 rows, each shape (64); float32")
    assert found.summaries["labels"].startswith("1,437 rows, each one value; int64")
    assert [(layer.name, layer.parameters) for layer in found.layers] == [
        ("input_layer", 0),
        ("dense", 4160),
        ("dense_1", 650),
    ]
    assert found.rows == 1437


def test_missing_files_are_listed(files, tmp_path: Path) -> None:
    found = inspect_files({"model": files["model"]}, trust=False, scratch=tmp_path)
    assert not found.ok and found.missing == ["data", "labels"]


def test_shape_and_row_mismatches(files, tmp_path: Path) -> None:
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((1437, 65), dtype=np.float32))
    found = inspect_files(files | {"data": wide}, trust=False, scratch=tmp_path)
    assert not found.ok
    assert any("shape (65,) but the model's input expects (64)" in p for p in found.problems)
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((20, 64), dtype=np.float32))
    found = inspect_files(files | {"data": short}, trust=False, scratch=tmp_path)
    assert any("Data has 20 rows but labels have 1437" in p for p in found.problems)


def test_an_uncompiled_model_is_refused(files, tmp_path: Path) -> None:
    model = tmp_path / "uncompiled.h5"
    shutil.copyfile(files["model"], model)
    with h5py.File(model, "r+") as root:
        del root.attrs["training_config"]
    found = inspect_files(files | {"model": model}, trust=False, scratch=tmp_path)
    assert "the model is not compiled" in found.errors["model"]
    assert not found.ok


def test_object_arrays_need_the_explicit_trust_choice(files, tmp_path: Path) -> None:
    labels = tmp_path / "labels-object.npy"
    np.save(labels, np.load(files["labels"]).astype(object), allow_pickle=True)
    refused = inspect_files(files | {"labels": labels}, trust=False, scratch=tmp_path)
    assert refused.object_arrays == ["labels"]
    assert "dtype object" in refused.errors["labels"]
    assert "I trust this file" in refused.errors["labels"]
    trusted = inspect_files(files | {"labels": labels}, trust=True, scratch=tmp_path)
    assert trusted.ok
    assert trusted.upload_paths["labels"] == tmp_path / "labels.npy"
    assert np.load(trusted.upload_paths["labels"]).dtype == np.int64
    assert "converted from dtype=object" in trusted.summaries["labels"]


def test_validation_files_are_checked_as_a_pair(files, digits_files, tmp_path: Path) -> None:
    pair = {
        "validation_data": digits_files.test_data,
        "validation_labels": digits_files.test_labels,
    }
    assert inspect_files(files | pair, trust=False, scratch=tmp_path).ok
    half = inspect_files(
        files | {"validation_data": digits_files.test_data}, trust=False, scratch=tmp_path
    )
    assert any("go together" in p for p in half.problems)
    wrong = inspect_files(
        files | pair | {"validation_labels": digits_files.labels}, trust=False, scratch=tmp_path
    )
    assert any(p.startswith("Validation files: data has 360 rows") for p in wrong.problems)


def test_not_a_model_at_all(files, tmp_path: Path) -> None:
    found = inspect_files(files | {"model": files["data"]}, trust=False, scratch=tmp_path)
    assert "not an HDF5 file" in found.errors["model"]
