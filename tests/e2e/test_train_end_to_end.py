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


def _password_file(directory: Path, password: str) -> Path:
    """Where the CLI reads the password: never the command line, which `ps` shows."""
    path = directory / "password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


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
        "--password-file",
        str(_password_file(tmp_path, "requestor-pass")),
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


def test_int8_deltas_nesterov_and_per_round_evaluation(cluster, digits_files, tmp_path) -> None:
    """The performance options together, through real providers: int8 deltas (inline),
    server-side Nesterov momentum, and every new model scored on the held-out files."""
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
        "--password-file",
        str(_password_file(tmp_path, "requestor-pass")),
        "--model",
        str(digits_files.model),
        "--data",
        str(digits_files.data),
        "--labels",
        str(digits_files.labels),
        "--validation-data",
        str(digits_files.test_data),
        "--validation-labels",
        str(digits_files.test_labels),
        "--epochs",
        "5",
        "--total-tasks",
        "8",
        "--task-size",
        "2",
        "--passes",
        "2",
        "--delta-codec",
        "int8",
        "--outer-optimizer",
        "nesterov",
        "--outer-learning-rate",
        "0.7",
        "--start",
        "--wait",
    )
    assert created.returncode == 0, created.stderr[-3000:]
    project_id = created.stdout.strip().splitlines()[-1]
    output = tmp_path / "trained.h5"
    assert cluster.cli("project", "download", project_id, "-o", str(output)).returncode == 0
    accuracy = held_out_accuracy(output, digits_files.test_data, digits_files.test_labels)
    assert accuracy >= 0.85, f"held-out accuracy {accuracy:.3f}"

    from daig.client import DaigClient
    from tests.helpers.waiting import wait_until

    client = DaigClient(cluster.api_url)
    client.login("requestor", "requestor-pass")
    rounds = wait_until(
        lambda: (r := client.rounds(project_id)) and all(x.evaluation for x in r) and r,
        120,
        what="every round evaluated",
    )
    last = rounds[-1].evaluation
    assert abs(last["accuracy"] - accuracy) < 0.02, (last, accuracy)  # the same final model
    status = cluster.cli("project", "status", project_id)
    assert "val acc" in status.stderr
