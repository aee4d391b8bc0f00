"""The whole flow as a user runs it: services and providers as processes, the CLI as a user.

``daig project create ... --start --wait`` trains digits across two provider processes over
RabbitMQ, Postgres and the local blob store; ``daig project download`` gives a model that
Keras loads and that scores >= 0.85 on held-out rows -- for a model saved by Keras 3 and for
one saved by Keras 2 (tf-keras).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daig.examples import held_out_accuracy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize("saved_by", ["keras3", "keras2"])
def test_cli_trains_digits_across_two_providers(
    cluster, digits_files, keras2_digits_model, saved_by: str, tmp_path: Path
) -> None:
    model = digits_files.model if saved_by == "keras3" else keras2_digits_model
    cluster.account("volunteer", "volunteer-pass").close()
    cluster.account("requestor", "requestor-pass").close()
    cluster.provider("provider-1", "volunteer", "volunteer-pass")
    cluster.provider("provider-2", "volunteer", "volunteer-pass")

    created = cluster.cli(
        "project",
        "create",
        "--server",
        cluster.api_url,
        "--user",
        "requestor",
        "--password",
        "requestor-pass",
        "--model",
        str(model),
        "--data",
        str(digits_files.data),
        "--labels",
        str(digits_files.labels),
        "--epochs",
        "5",
        "--batch-size",
        "32",
        "--total-tasks",
        "8",
        "--task-size",
        "2",
        "--passes",
        "2",
        "--start",
        "--wait",
    )
    assert created.returncode == 0, created.stderr[-3000:]
    project_id = created.stdout.strip().splitlines()[-1]
    assert "training finished after 8 rounds" in created.stderr

    status = cluster.cli("project", "status", project_id)
    assert status.returncode == 0, status.stderr
    assert "state: done" in status.stderr and "round 8 of 8" in status.stderr

    output = tmp_path / "trained.h5"
    downloaded = cluster.cli("project", "download", project_id, "-o", str(output))
    assert downloaded.returncode == 0, downloaded.stderr
    accuracy = held_out_accuracy(output, digits_files.test_data, digits_files.test_labels)
    assert accuracy >= 0.85, f"held-out accuracy {accuracy:.3f}"

    # Both providers did real work: each published accepted results.
    for provider in ("provider-1", "provider-2"):
        assert re.search(r"result \S+ sent", cluster.processes.log(provider)), provider
