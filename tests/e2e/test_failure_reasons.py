"""Issue 15: a real provider fails a real task; the requestor learns why, the volunteer keeps
the traceback.

The model's loss is sparse categorical crossentropy with ``ignore_class`` set, so the label
check (``daig.labels``) lets labels of 63 through for 10 output units, as labels the server
cannot check. TensorFlow then fails the fit with an error that carries the provider's file
paths in its creation trace, as in the user trial.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from daig.client import DaigClient
from daig.contract.http import ProjectOut
from daig.hyperparams import Hyperparameters

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[\w.-]+/")


def _unchecked_sparse_model(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as root:
        config = json.loads(root.attrs["training_config"])
        config["loss"] = {
            "class_name": "SparseCategoricalCrossentropy",
            "config": {
                "name": "sparse_categorical_crossentropy",
                "reduction": "sum_over_batch_size",
                "from_logits": False,
                "ignore_class": 255,
            },
        }
        root.attrs["training_config"] = json.dumps(config)
    return target


def _wait_for_failure(client: DaigClient, project_id: str, timeout: float) -> ProjectOut:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        project = client.project(project_id)
        if project.state == "failed":
            return project
        time.sleep(1)
    raise AssertionError(f"project still {client.project(project_id).state} after {timeout} s")


def test_a_failing_task_explains_itself_without_the_volunteers_paths(
    cluster_factory, digits_files, tmp_path: Path
) -> None:
    cluster = cluster_factory(max_task_failures="2")
    cluster.account("volunteer", "volunteer-pass").close()
    requestor = cluster.account("requestor", "requestor-pass")
    cluster.provider("provider-1", "volunteer", "volunteer-pass")
    model = _unchecked_sparse_model(digits_files.model, tmp_path / "unchecked.h5")
    labels = np.load(digits_files.labels)
    labels[::5] = 63  # every batch of every shard holds one
    np.save(tmp_path / "y63.npy", labels)

    project = requestor.create_project("fails", Hyperparameters(total_tasks=2, task_size=2))
    requestor.upload_file(project.id, "model", model)
    requestor.upload_file(project.id, "data", digits_files.data)
    requestor.upload_file(project.id, "labels", tmp_path / "y63.npy")
    requestor.start(project.id)
    failed = _wait_for_failure(requestor, str(project.id), timeout=400)

    assert failed.error is not None and failed.last_failure is not None
    named = re.search(r"training shard (\d+) failed 2 times; last error: ", failed.error)
    assert named, failed.error
    shard = int(named.group(1))
    for shown in (failed.error, failed.last_failure.reason):
        assert "InvalidArgumentError" in shown
        # TensorFlow words it by kernel: "label value of 63 ... range of [0, 10)" or, with op
        # determinism on (as providers train), "indices[2] = 63 is not in [0, 10)".
        assert re.search(r"\b63\b.*\[0, 10\)", shown), shown
        assert not ABSOLUTE_PATH.search(shown), shown
        assert str(Path.home()) not in shown and 'File "' not in shown
        assert str(tmp_path) not in shown

    status = cluster.cli(
        "project",
        "status",
        str(project.id),
        "--server",
        cluster.api_url,
        "--user",
        "requestor",
        "--password",
        "requestor-pass",
    )
    assert status.returncode == 0, status.stderr
    said = " ".join(status.stderr.split())  # rich wraps long lines
    assert f"error: training shard {shard} failed 2 times" in said
    assert "InvalidArgumentError" in said and not ABSOLUTE_PATH.search(said)

    # The volunteer's own log keeps the whole story, at WARNING.
    log = cluster.processes.log("provider-1")
    [line] = [
        line
        for line in log.splitlines()
        if f"shard {shard} task" in line and "training failed: InvalidArgumentError" in line
    ][-1:]
    assert "WARNING" in line
    assert "Traceback (most recent call last)" in log and 'File "/' in log
    requestor.close()
