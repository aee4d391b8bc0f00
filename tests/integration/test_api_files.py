"""Project files over real HTTP: every bad upload is refused with a message saying what is wrong;
files are cross-checked, frozen once started; start checks them together; model download.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from daig.client import ClientError, DaigClient
from daig.contract.http import ProjectOut
from daig.hyperparams import Hyperparameters
from daig.weights.h5weights import read_weights
from tests.helpers.projects import SmallData, create_started_project, write_small_data


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, digits_files) -> dict[str, Path]:
    """One file per way an upload can be wrong, built once for the module."""
    import keras

    directory = tmp_path_factory.mktemp("bad-files")
    paths = {name: directory / name for name in (
        "text.h5", "uncompiled.h5", "lambda.h5", "object.npy", "fortran.npy", "truncated.npy",
        "strings.npy", "not-npy.npy", "scalar.npy",
    )}  # fmt: skip
    paths["text.h5"].write_text("this is not a model")
    uncompiled = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10)])
    uncompiled.save(paths["uncompiled.h5"])
    with_lambda = keras.Sequential(
        [keras.Input(shape=(64,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(10)]
    )
    with_lambda.compile(optimizer="adam", loss="mse")
    with_lambda.save(paths["lambda.h5"])
    np.save(paths["object.npy"], np.array([{"a": 1}, [2, 3]], dtype=object), allow_pickle=True)
    np.save(paths["fortran.npy"], np.asfortranarray(np.ones((10, 64), dtype=np.float32)))
    full = digits_files.data.read_bytes()
    paths["truncated.npy"].write_bytes(full[: len(full) - 100])
    np.save(paths["strings.npy"], np.array(["a", "b"]))
    paths["not-npy.npy"].write_bytes(b"\x00\x01 definitely not numpy")
    np.save(paths["scalar.npy"], np.float32(1.0))
    return paths


@pytest.fixture
def client(shared_api_server, make_user) -> DaigClient:
    return make_user(shared_api_server.url)


@pytest.fixture
def project(client: DaigClient) -> ProjectOut:
    return client.create_project("files", Hyperparameters(total_tasks=3, task_size=3))


@pytest.mark.parametrize(
    ("kind", "name", "words"),
    [
        ("model", "text.h5", ["not an HDF5 file"]),
        ("model", "uncompiled.h5", ["not compiled", "model.compile"]),
        ("model", "lambda.h5", ["Lambda", "never accepted"]),
        ("data", "object.npy", ["dtype object", "unpickling"]),
        ("labels", "object.npy", ["dtype object"]),
        ("data", "fortran.npy", ["Fortran order"]),
        ("data", "truncated.npy", ["truncated"]),
        ("data", "strings.npy", ["only bool, integer and float"]),
        ("labels", "not-npy.npy", ["not a valid .npy file"]),
        ("data", "scalar.npy", ["at least one row"]),
        ("data", "text.h5", ["not a valid .npy file"]),
        ("model", "object.npy", ["not an HDF5 file"]),
    ],
)
def test_bad_upload_is_refused_saying_what_is_wrong(
    client: DaigClient, project: ProjectOut, bad_files: dict[str, Path], kind: str, name: str, words
) -> None:
    with pytest.raises(ClientError) as error:
        client.upload_file(project.id, kind, bad_files[name])
    assert error.value.status == 422
    for word in words:
        assert word in str(error.value), str(error.value)
    assert client.project(project.id).files == []  # nothing was kept


class _Touch:
    """Unpickling this creates ``path``: what a malicious ``.npy`` does to whoever loads it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def _pickle_payloads(directory: Path, marker: Path) -> list[Path]:
    """An object array and a structured array with an object field, both carrying ``_Touch``."""
    plain = np.empty(10, dtype=object)
    plain[:] = [_Touch(marker)] * 10
    structured = np.zeros(10, dtype=[("x", "<f4"), ("payload", "O")])
    structured["payload"] = [_Touch(marker)] * 10
    directory.mkdir(parents=True)
    paths = [directory / "plain.npy", directory / "structured.npy"]
    for path, array in zip(paths, (plain, structured), strict=True):
        np.save(path, array, allow_pickle=True)
    return paths


def test_a_pickle_payload_is_refused_without_ever_being_unpickled(
    client: DaigClient, project: ProjectOut, digits_files, tmp_path: Path
) -> None:
    # The payloads are live: loading them with pickles allowed runs their code.
    probe = tmp_path / "probe-marker"
    for path in _pickle_payloads(tmp_path / "probe", probe):
        np.load(path, allow_pickle=True)
        assert probe.exists()
        probe.unlink()

    marker = tmp_path / "server-marker"
    payloads = _pickle_payloads(tmp_path / "evil", marker)
    client.upload_file(project.id, "model", digits_files.model)
    for kind in ("data", "labels"):
        for path in payloads:
            with pytest.raises(ClientError) as error:
                client.upload_file(project.id, kind, path)
            assert error.value.status == 422, path
            assert "dtype object" in str(error.value) and "unpickling" in str(error.value)
    assert not marker.exists()
    assert [f.kind for f in client.project(project.id).files] == ["model"]


def test_empty_upload_and_unknown_kind(
    client: DaigClient, project: ProjectOut, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(ClientError) as error:
        client.upload_file(project.id, "data", empty)
    assert error.value.status == 400 and "empty" in str(error.value)
    with pytest.raises(ClientError) as error:
        client.upload_file(project.id, "weights", empty)
    assert (
        error.value.status == 404
        and "model, data, labels, validation_data, validation_labels" in str(error.value)
    )


def test_good_files_are_stored_with_what_was_read_from_them(
    client: DaigClient, project: ProjectOut, digits_files, small_data: SmallData
) -> None:
    model = client.upload_file(project.id, "model", digits_files.model)
    assert model.meta["input_shape"] == [64]
    assert model.meta["parameters"] == 64 * 64 + 64 + 64 * 10 + 10
    data = client.upload_file(project.id, "data", small_data.data)
    assert data.meta["shape"] == [10, 64] and data.meta["dtype"] == "<f4"
    labels = client.upload_file(project.id, "labels", small_data.labels)
    assert labels.size == small_data.labels.stat().st_size
    kinds = sorted(f.kind for f in client.project(project.id).files)
    assert kinds == ["data", "labels", "model"]


def test_label_rows_must_match_data_rows(
    client: DaigClient, project: ProjectOut, small_data: SmallData, tmp_path: Path
) -> None:
    nine = write_small_data(tmp_path / "nine", rows=9)
    client.upload_file(project.id, "data", small_data.data)
    with pytest.raises(ClientError) as error:
        client.upload_file(project.id, "labels", nine.labels)
    assert error.value.status == 422
    assert "data has 10 rows but labels have 9" in str(error.value)
    # The same mismatch is caught whichever file comes second.
    other = client.create_project("other order", Hyperparameters(total_tasks=3, task_size=3))
    client.upload_file(other.id, "labels", nine.labels)
    with pytest.raises(ClientError) as error:
        client.upload_file(other.id, "data", small_data.data)
    assert "data has 10 rows but labels have 9" in str(error.value)
    assert [f.kind for f in client.project(other.id).files] == ["labels"]


def test_data_rows_must_fit_the_model_input(
    client: DaigClient, project: ProjectOut, digits_files, tmp_path: Path
) -> None:
    narrow = write_small_data(tmp_path / "narrow", rows=10, features=32)
    client.upload_file(project.id, "model", digits_files.model)
    with pytest.raises(ClientError) as error:
        client.upload_file(project.id, "data", narrow.data)
    assert error.value.status == 422
    assert "each data row has shape (32,)" in str(error.value)
    assert "expects (64)" in str(error.value)
    # Model second: also refused.
    other = client.create_project("model second", Hyperparameters(total_tasks=3, task_size=3))
    client.upload_file(other.id, "data", narrow.data)
    with pytest.raises(ClientError) as error:
        client.upload_file(other.id, "model", digits_files.model)
    assert "each data row has shape (32,)" in str(error.value)


def test_a_rejected_upload_keeps_the_previous_good_file(
    client: DaigClient, project: ProjectOut, small_data: SmallData, bad_files: dict[str, Path]
) -> None:
    good = client.upload_file(project.id, "data", small_data.data)
    with pytest.raises(ClientError):
        client.upload_file(project.id, "data", bad_files["fortran.npy"])
    [kept] = client.project(project.id).files
    assert kept.sha256 == good.sha256


def test_start_refuses_missing_files_and_too_many_tasks(
    client: DaigClient, digits_files, small_data: SmallData
) -> None:
    project = client.create_project("too many", Hyperparameters(total_tasks=12, task_size=4))
    client.upload_file(project.id, "model", digits_files.model)
    with pytest.raises(ClientError) as error:
        client.start(project.id)
    assert error.value.status == 409 and "data, labels" in str(error.value)
    client.upload_file(project.id, "data", small_data.data)
    client.upload_file(project.id, "labels", small_data.labels)
    with pytest.raises(ClientError) as error:
        client.start(project.id)
    assert error.value.status == 422
    assert "total_tasks (12) exceeds the 10 rows" in str(error.value)
    assert client.project(project.id).state == "created"


def test_start_refuses_shards_emptied_by_validation_split(
    client: DaigClient, digits_files, small_data: SmallData
) -> None:
    params = Hyperparameters(total_tasks=5, task_size=5, validation_split=0.6)
    project = client.create_project("split", params)
    for kind, path in (
        ("model", digits_files.model),
        ("data", small_data.data),
        ("labels", small_data.labels),
    ):
        client.upload_file(project.id, kind, path)
    with pytest.raises(ClientError) as error:
        client.start(project.id)
    assert error.value.status == 422 and "validation_split" in str(error.value)


def test_files_are_frozen_after_start_and_start_happens_once(
    client: DaigClient, digits_files, small_data: SmallData
) -> None:
    params = Hyperparameters(total_tasks=3, task_size=3)
    started = create_started_project(client, digits_files.model, small_data, params)
    assert started.state == "queued" and started.total_rounds == 1
    for kind, path in (("model", digits_files.model), ("data", small_data.data)):
        with pytest.raises(ClientError) as error:
            client.upload_file(started.id, kind, path)
        assert error.value.status == 409
        assert "files cannot change after it started" in str(error.value)
    with pytest.raises(ClientError) as error:
        client.start(started.id)
    assert error.value.status == 409 and "already" in str(error.value)


def test_model_download_before_and_after_start(
    client: DaigClient, project: ProjectOut, digits_files, small_data: SmallData, tmp_path: Path
) -> None:
    from daig.modelfile.keras_load import canonical_weights, load_model

    with pytest.raises(ClientError) as error:
        client.download_model(project.id, tmp_path / "none.h5")
    assert error.value.status == 404 and "upload one first" in str(error.value)

    client.upload_file(project.id, "model", digits_files.model)
    before = tmp_path / "before.h5"
    assert client.download_model(project.id, before).weights_version == ""
    assert before.read_bytes() == digits_files.model.read_bytes()

    client.upload_file(project.id, "data", small_data.data)
    client.upload_file(project.id, "labels", small_data.labels)
    client.start(project.id)
    after = tmp_path / "after.h5"
    assert client.download_model(project.id, after).weights_version == "0"
    with h5py.File(after, "r") as root:
        assert "training_config" in root.attrs
        assert json.loads(root.attrs["model_config"])["class_name"] == "Sequential"
    model, info = load_model(after)
    assert info.input_shape == (64,)
    expected = read_weights(digits_files.model)
    got = [np.asarray(v) for v in canonical_weights(model)]
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    predictions = model.predict(np.load(small_data.data), verbose=0)
    assert predictions.shape == (10, 10)
