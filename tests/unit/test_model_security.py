"""Hostile model files: .keras archives and HDF5 tricks are refused before anything loads."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from daig.modelfile.archive import inspect_archive, is_keras_archive
from daig.modelfile.convert import convert_to_h5
from daig.modelfile.inspect import ModelRejected, inspect_model
from daig.validation import FileRejected, check_file


@pytest.fixture(scope="module")
def keras_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import keras

    out = tmp_path_factory.mktemp("archives")

    def mlp() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    compiled = mlp()
    compiled.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    compiled.save(out / "good.keras")
    mlp().save(out / "uncompiled.keras")
    lam = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Lambda(lambda x: x * 2, name="evil"),
            keras.layers.Dense(1),
        ]
    )
    lam.compile(optimizer="adam", loss="mse")
    lam.save(out / "lambda.keras")
    return {p.stem: p for p in out.glob("*.keras")}


def _rewrite(
    source: Path,
    target: Path,
    extra: dict[str, bytes] | None = None,
    config: dict | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for info in old.infolist():
            data = old.read(info)
            if config is not None and info.filename == "config.json":
                data = json.dumps(config).encode()
            new.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            new.writestr(name, data)
    return target


def test_a_compiled_keras_archive_is_accepted_and_described(keras_archives) -> None:
    assert is_keras_archive(keras_archives["good"])
    summary = inspect_archive(keras_archives["good"])
    assert summary["input_shape"] == [64]
    assert summary["optimizer"] == "Adam" and summary["format"] == "keras"
    assert check_file("model", keras_archives["good"]).meta["format"] == "keras"


def test_uncompiled_archive_is_refused(keras_archives) -> None:
    with pytest.raises(ModelRejected, match="not compiled"):
        inspect_archive(keras_archives["uncompiled"])


def test_lambda_in_an_archive_is_refused_by_name(keras_archives) -> None:
    with pytest.raises(FileRejected, match="evil.*Lambda"):
        check_file("model", keras_archives["lambda"])


def test_archive_with_an_extra_file_is_refused(keras_archives, tmp_path: Path) -> None:
    path = _rewrite(keras_archives["good"], tmp_path / "x.keras", {"payload.py": b"import os"})
    with pytest.raises(ModelRejected, match="unexpected files"):
        inspect_archive(path)


def test_zip_bomb_is_refused_without_inflating_it(keras_archives, tmp_path: Path) -> None:
    path = tmp_path / "bomb.keras"
    with (
        zipfile.ZipFile(keras_archives["good"]) as old,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new,
    ):
        new.writestr("config.json", old.read("config.json"))
        new.writestr("metadata.json", old.read("metadata.json"))
        new.writestr("model.weights.h5", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(ModelRejected, match="compressed"):
        inspect_archive(path)


def test_custom_class_in_an_archive_is_refused(keras_archives, tmp_path: Path) -> None:
    with zipfile.ZipFile(keras_archives["good"]) as archive:
        config = json.loads(archive.read("config.json"))
    config["config"]["layers"][1]["class_name"] = "Acme>Backdoor"
    path = _rewrite(keras_archives["good"], tmp_path / "custom.keras", config=config)
    with pytest.raises(ModelRejected, match="Backdoor"):
        inspect_archive(path)


def test_conversion_to_h5_gives_a_model_the_h5_checks_accept(keras_archives, tmp_path) -> None:
    target = tmp_path / "converted.h5"
    convert_to_h5(keras_archives["good"], target)
    info = inspect_model(target)
    assert info.input_shape == (64,) and info.parameters == 64 * 8 + 8 + 8 * 10 + 10


def test_conversion_refuses_what_the_checks_refuse(keras_archives, tmp_path) -> None:
    with pytest.raises(ModelRejected, match="Lambda"):
        convert_to_h5(keras_archives["lambda"], tmp_path / "never.h5")
    assert not (tmp_path / "never.h5").exists()


# --- HDF5 tricks ---------------------------------------------------------------------------


def _copy(digits_files, tmp_path: Path) -> Path:
    path = tmp_path / "model.h5"
    shutil.copyfile(digits_files.model, path)
    return path


def test_soft_link_is_refused(digits_files, tmp_path: Path) -> None:
    path = _copy(digits_files, tmp_path)
    with h5py.File(path, "r+") as root:
        root["sneaky"] = h5py.SoftLink("/model_weights")
    with pytest.raises(ModelRejected, match="sneaky.*link"):
        inspect_model(path)


def test_external_link_is_refused(digits_files, tmp_path: Path) -> None:
    path = _copy(digits_files, tmp_path)
    with h5py.File(path, "r+") as root:
        root["outside"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(ModelRejected, match="outside.*link"):
        inspect_model(path)


def test_external_storage_is_refused(digits_files, tmp_path: Path) -> None:
    path = _copy(digits_files, tmp_path)
    (tmp_path / "raw.bin").write_bytes(b"\0" * 64)
    with h5py.File(path, "r+") as root:
        root.create_dataset(
            "ext", shape=(16,), dtype="f4", external=[(str(tmp_path / "raw.bin"), 0, 64)]
        )
    with pytest.raises(ModelRejected, match="ext.*outside the file"):
        inspect_model(path)


def test_dataset_declaring_more_than_the_file_holds_is_refused(digits_files, tmp_path) -> None:
    path = _copy(digits_files, tmp_path)
    with h5py.File(path, "r+") as root:  # chunked and never written: costs nothing on disk
        root.create_dataset("huge", shape=(10**6, 10**4), dtype="f4", chunks=(1, 1024))
    with pytest.raises(ModelRejected, match="huge.*declares"):
        inspect_model(path)


def test_oversized_attribute_is_refused(digits_files, tmp_path: Path, monkeypatch) -> None:
    # HDF5 keeps attributes under 64 KiB in the object header; lower the limit to test it.
    monkeypatch.setattr("daig.modelfile.inspect.MAX_ATTRIBUTE_BYTES", 16 * 1024)
    path = _copy(digits_files, tmp_path)
    with h5py.File(path, "r+") as root:
        root["model_weights"].attrs["padding"] = np.zeros(8 * 1024, dtype="f4")  # 32 KiB
    with pytest.raises(ModelRejected, match="padding"):
        inspect_model(path)


def test_not_a_zip_nor_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(io.BytesIO(b"PK\x03\x04 broken").getvalue())
    with pytest.raises(FileRejected):
        check_file("model", path)
