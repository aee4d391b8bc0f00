"""``daig project delete``: an idle project goes with its files; a training one is refused with
what to do (cancel first), and goes once cancelled."""

from __future__ import annotations

import pytest

from daig.blobstore import open_blob_store
from daig.client import ClientError
from daig.hyperparams import Hyperparameters
from daig.keys import file_key
from tests.helpers.accounts import PASSWORD
from tests.helpers.cli import run_daig


def test_delete_from_the_command_line(api_server, make_user, digits_files, tmp_path) -> None:
    user = make_user(api_server.url, "deleter")
    name = user.me().username
    login = ["--server", api_server.url, "--user", name, "--password", PASSWORD]
    project = user.create_project("cli-doomed", Hyperparameters(total_tasks=4, task_size=2))
    for kind in ("model", "data", "labels"):
        user.upload_file(project.id, kind, getattr(digits_files, kind))
    user.start(project.id)
    blobs = open_blob_store(api_server.settings)

    refused = run_daig(tmp_path, "project", "delete", str(project.id), *login)
    assert refused.returncode == 1
    assert "cannot be deleted while it trains" in refused.stderr
    assert f"daig project cancel {project.id}" in refused.stderr
    assert user.project(project.id).state == "queued"

    cancelled = run_daig(tmp_path, "project", "cancel", str(project.id), *login)
    assert cancelled.returncode == 0, cancelled.stderr
    deleted = run_daig(tmp_path, "project", "delete", str(project.id), *login)
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted project {project.id}" in deleted.stderr  # the console writes to stderr
    assert not blobs.exists(file_key(project.id, "model"))
    with pytest.raises(ClientError) as error:
        user.project(project.id)
    assert error.value.status == 404
