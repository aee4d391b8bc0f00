"""A provider stopped with Ctrl-C mid-task gives the task back; another provider finishes it."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import create_engine, text

from daig.hyperparams import Hyperparameters
from tests.helpers.projects import wait_for_end
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_ctrl_c_gives_the_task_back_and_the_project_completes(cluster, digits_files) -> None:
    requestor = cluster.account("requestor", "requestor-pass")
    cluster.account("first", "first-pass").close()
    cluster.account("second", "second-pass").close()
    # One long task: the whole data set, many epochs, so the interrupt lands mid-training.
    project = requestor.create_project(
        "interrupt", Hyperparameters(epochs=300, total_tasks=1, task_size=1, passes=1)
    )
    for kind in ("model", "data", "labels"):
        requestor.upload_file(project.id, kind, getattr(digits_files, kind))
    requestor.start(project.id)

    cluster.provider("first", "first", "first-pass")
    wait_until(
        lambda: requestor.project(project.id).active_contributors == 1,
        120,
        what="the first provider to claim the task",
    )
    cluster.processes.signal("first", signal.SIGINT)
    assert cluster.processes.stop("first", timeout=30) == 0

    engine = create_engine(cluster.database_url)
    with engine.connect() as connection:
        states = (
            connection.execute(
                text(
                    "SELECT c.state FROM claims c JOIN users u ON u.id = c.provider_id "
                    "WHERE u.username = 'first'"
                )
            )
            .scalars()
            .all()
        )
    assert states == ["released"], "Ctrl-C must release the claim at once, not let it expire"

    cluster.provider("second", "second", "second-pass")
    final = wait_for_end(requestor, project.id)
    assert final.state == "done", final
    with engine.connect() as connection:
        winner = (
            connection.execute(
                text(
                    "SELECT u.username FROM results r JOIN users u ON u.id = r.provider_id "
                    "WHERE r.status = 'accepted'"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert winner == ["second"]
