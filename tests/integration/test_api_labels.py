"""Issue 15: the API refuses labels the model cannot learn, on upload (either order) and at start.

Real API, Postgres and blob store; the rule itself is tested in ``tests/unit/test_labels.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from daig.client import ClientError, DaigClient
from daig.db.models import ProjectFile
from daig.hyperparams import Hyperparameters

ROWS = 12


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, digits_files) -> dict[str, Path]:
    """A binary (sigmoid unit) and a categorical model for 64 features, and label arrays."""
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import keras

    out = tmp_path_factory.mktemp("label-files")
    paths: dict[str, Path] = {}
    binary = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(1, "sigmoid")])
    binary.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=False))
    paths["binary_model"] = out / "binary.h5"
    binary.save(paths["binary_model"])
    onehot = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10, "softmax")])
    onehot.compile(optimizer="adam", loss="categorical_crossentropy")
    paths["categorical_model"] = out / "categorical.h5"
    onehot.save(paths["categorical_model"])
    classes = np.arange(ROWS) % 10
    arrays = {
        "x": np.random.default_rng(0).random((ROWS, 64), dtype=np.float32),
        "classes": classes,
        "classes63": np.where(classes == 4, 63, classes),
        "onehot": np.eye(10, dtype=np.float32)[classes],
        "zero_one": classes % 2,
        "zero_one_two": classes % 3,
    }
    for name, array in arrays.items():
        paths[name] = out / f"{name}.npy"
        np.save(paths[name], array, allow_pickle=False)
    return paths


@pytest.fixture
def client(shared_api_server, make_user) -> DaigClient:
    return make_user(shared_api_server.url)


def new_project(client: DaigClient) -> str:
    params = Hyperparameters(total_tasks=3, task_size=3)
    return str(client.create_project("labels", params).id)


def refusal(client: DaigClient, project_id: str, kind: str, path: Path) -> str:
    with pytest.raises(ClientError) as error:
        client.upload_file(project_id, kind, path)
    assert error.value.status == 422
    return str(error.value)


def test_sparse_labels_past_the_output_are_refused_in_either_upload_order(
    client: DaigClient, digits_files, files: dict[str, Path]
) -> None:
    words = "labels go up to 63 but the model's last layer has 10 units"
    model_first = new_project(client)
    client.upload_file(model_first, "model", digits_files.model)
    client.upload_file(model_first, "data", files["x"])
    assert words in refusal(client, model_first, "labels", files["classes63"])
    assert {f.kind for f in client.project(model_first).files} == {"model", "data"}

    labels_first = new_project(client)
    client.upload_file(labels_first, "labels", files["classes63"])  # nothing to compare yet
    client.upload_file(labels_first, "data", files["x"])
    assert words in refusal(client, labels_first, "model", digits_files.model)
    assert {f.kind for f in client.project(labels_first).files} == {"labels", "data"}


def test_validation_labels_are_checked_too(
    client: DaigClient, digits_files, files: dict[str, Path]
) -> None:
    project = new_project(client)
    client.upload_file(project, "model", digits_files.model)
    client.upload_file(project, "validation_data", files["x"])
    message = refusal(client, project, "validation_labels", files["classes63"])
    assert "validation labels go up to 63 but the model's last layer has 10 units" in message


def test_categorical_loss_needs_one_hot_rows(client: DaigClient, files: dict[str, Path]) -> None:
    project = new_project(client)
    client.upload_file(project, "model", files["categorical_model"])
    assert "to_categorical(labels, 10)" in refusal(client, project, "labels", files["classes"])
    stored = client.upload_file(project, "labels", files["onehot"])
    assert stored.meta["values"]["not_one_hot_row"] is None


def test_binary_loss_needs_zeros_and_ones(client: DaigClient, files: dict[str, Path]) -> None:
    project = new_project(client)
    client.upload_file(project, "model", files["binary_model"])
    message = refusal(client, project, "labels", files["zero_one_two"])
    assert "labels go from 0 to 2" in message and "0 or 1" in message
    client.upload_file(project, "labels", files["zero_one"])


def _forget_label_values(database_url: str, project_id: str) -> None:
    """Make the labels' metadata look like an upload to a server from before the check."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            row = session.scalars(
                select(ProjectFile).where(
                    ProjectFile.project_id == uuid.UUID(project_id), ProjectFile.kind == "labels"
                )
            ).one()
            row.meta = {k: v for k, v in row.meta.items() if k != "values"}
    finally:
        engine.dispose()


def test_start_checks_labels_stored_before_the_check_existed(
    shared_api_server, client: DaigClient, digits_files, files: dict[str, Path]
) -> None:
    database_url = str(shared_api_server.settings.database_url)
    bad = new_project(client)
    client.upload_file(bad, "labels", files["classes63"])
    client.upload_file(bad, "data", files["x"])
    _forget_label_values(database_url, bad)
    client.upload_file(bad, "model", digits_files.model)  # unsummarized labels: not compared
    with pytest.raises(ClientError) as error:
        client.start(bad)
    assert error.value.status == 422
    assert "labels go up to 63 but the model's last layer has 10 units" in str(error.value)
    assert client.project(bad).state == "created"

    good = new_project(client)
    for kind, path in (("labels", files["classes"]), ("data", files["x"])):
        client.upload_file(good, kind, path)
    _forget_label_values(database_url, good)
    client.upload_file(good, "model", digits_files.model)
    assert client.start(good).state == "queued"
    [labels] = [f for f in client.project(good).files if f.kind == "labels"]
    assert labels.meta["values"]["maximum"] == 9  # read again from the stored file, and kept
