"""The CLI's local checks: object arrays refused with the reason unless trusted, .keras models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.helpers.accounts import PASSWORD
from tests.helpers.cli import run_daig


def _object_copy(source: Path, target: Path) -> Path:
    rows = np.load(source)
    array = np.empty(len(rows), dtype=object)
    array[:] = list(rows)
    np.save(target, array, allow_pickle=True)
    return target


def test_object_arrays_need_the_trust_flag(api_server, make_user, digits_files, tmp_path) -> None:
    user = make_user(api_server.url, "requestor")
    name = user.me().username
    data = _object_copy(digits_files.data, tmp_path / "x-object.npy")
    common = [
        "project",
        "create",
        "--server",
        api_server.url,
        "--user",
        name,
        "--model",
        str(digits_files.model),
        "--data",
        str(data),
        "--labels",
        str(digits_files.labels),
    ]
    password = {"DAIG_PASSWORD": PASSWORD}
    refused = run_daig(tmp_path, *common, env=password)
    assert refused.returncode == 1
    assert "unpickling" in refused.stderr and "--trust-object-arrays" in refused.stderr
    assert user.projects() == [], "nothing is created when the local check fails"

    trusted = run_daig(tmp_path, *common, "--trust-object-arrays", env=password)
    assert trusted.returncode == 0, trusted.stderr
    project_id = trusted.stdout.strip().splitlines()[-1]
    [data_file] = [f for f in user.project(project_id).files if f.kind == "data"]
    assert data_file.meta["dtype"] == "<f4" and data_file.meta["shape"][1] == 64


def test_labels_the_model_cannot_learn_are_refused_before_upload(
    api_server, make_user, digits_files, tmp_path
) -> None:
    """Issue 15: labels up to 63 for a model with 10 output units never leave the machine."""
    user = make_user(api_server.url, "requestor")
    labels = np.load(digits_files.labels)
    labels[11] = 63
    np.save(tmp_path / "y63.npy", labels)
    refused = run_daig(
        tmp_path,
        "project",
        "create",
        "--server",
        api_server.url,
        "--user",
        user.me().username,
        "--password",
        PASSWORD,
        "--model",
        str(digits_files.model),
        "--data",
        str(digits_files.data),
        "--labels",
        str(tmp_path / "y63.npy"),
    )
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())  # rich wraps long lines
    assert "labels go up to 63 but the model's last layer has 10 units" in message
    assert "row 11" in message
    assert user.projects() == [], "nothing is created when the local check fails"


def test_keras_archive_upload_is_converted_to_h5(
    api_server, make_user, digits_files, tmp_path
) -> None:
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from daig.examples import build_mlp
    from daig.hyperparams import Hyperparameters
    from daig.modelfile.keras_load import load_model

    archive = tmp_path / "digits.keras"
    build_mlp(keras).save(archive)
    user = make_user(api_server.url, "requestor")
    project = user.create_project("keras-format", Hyperparameters())
    stored = user.upload_file(project.id, "model", archive)
    assert stored.meta["converted_from"] == "keras"
    assert stored.meta["input_shape"] == [64]
    assert stored.meta["output"]["units"] == 10  # read again from the converted .h5
    user.download_model(project.id, tmp_path / "back.h5")
    model, info = load_model(tmp_path / "back.h5")  # an .h5 the providers can train
    assert info.parameters == stored.meta["parameters"]
