"""The API against a real Postgres, RabbitMQ vhost and local blob store, over real HTTP."""

from __future__ import annotations

import pytest

from daig.client import ClientError, DaigClient
from daig.hyperparams import Hyperparameters


@pytest.fixture
def client(api_server) -> DaigClient:
    client = DaigClient(api_server.url)
    client.signup("alice", "correct-horse")
    client.login("alice", "correct-horse")
    return client


def test_create_upload_start_and_status(client: DaigClient, digits_files) -> None:
    project = client.create_project("digits", Hyperparameters(total_tasks=12, task_size=4))
    for kind, path in (
        ("model", digits_files.model),
        ("data", digits_files.data),
        ("labels", digits_files.labels),
    ):
        stored = client.upload_file(project.id, kind, path)
        assert stored.size == path.stat().st_size
    started = client.start(project.id)
    assert started.state == "queued"
    assert started.total_rounds == 3
    assert started.hyperparameters.max_contributors == 4


def test_start_without_files_says_what_is_missing(client: DaigClient) -> None:
    project = client.create_project("empty", Hyperparameters())
    with pytest.raises(ClientError) as error:
        client.start(project.id)
    assert error.value.status == 409
    assert "model, data, labels" in str(error.value)


def test_delete_removes_an_idle_project_and_its_blobs(
    client: DaigClient, api_server, digits_files
) -> None:
    from daig.blobstore import open_blob_store
    from daig.keys import file_key

    project = client.create_project("doomed", Hyperparameters())
    client.upload_file(project.id, "model", digits_files.model)
    blobs = open_blob_store(api_server.settings)
    assert blobs.exists(file_key(project.id, "model"))
    client.delete_project(project.id)
    assert not blobs.exists(file_key(project.id, "model"))
    with pytest.raises(ClientError) as error:
        client.project(project.id)
    assert error.value.status == 404


def test_a_training_project_cannot_be_deleted(client: DaigClient, digits_files) -> None:
    project = client.create_project("busy", Hyperparameters())
    for kind in ("model", "data", "labels"):
        client.upload_file(project.id, kind, getattr(digits_files, kind))
    client.start(project.id)
    with pytest.raises(ClientError) as error:
        client.delete_project(project.id)
    assert error.value.status == 409
    assert "trains" in str(error.value)


def test_uploads_over_the_size_limit_are_refused(settings, digits_files) -> None:
    from tests.helpers.services import ApiServer

    small = settings.model_copy(update={"max_model_bytes": 1000, "max_upload_bytes": 2000})
    with ApiServer(small) as server, DaigClient(server.url) as client:
        client.signup("bob", "correct-horse")
        client.login("bob", "correct-horse")
        project = client.create_project("big", Hyperparameters())
        for kind, path in (("model", digits_files.model), ("data", digits_files.data)):
            with pytest.raises(ClientError) as error:
                client.upload_file(project.id, kind, path)
            assert error.value.status == 413
            assert "exceeds the limit" in str(error.value)
        assert client.project(project.id).files == []
