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
        stored = client.upload_file(project["id"], kind, path)
        assert stored["size"] == path.stat().st_size
    started = client.start(project["id"])
    assert started["state"] == "queued"
    assert started["total_rounds"] == 3
    assert started["hyperparameters"]["max_contributors"] == 4


def test_start_without_files_says_what_is_missing(client: DaigClient) -> None:
    project = client.create_project("empty", Hyperparameters())
    with pytest.raises(ClientError) as error:
        client.start(project["id"])
    assert error.value.status == 409
    assert "model, data, labels" in str(error.value)
