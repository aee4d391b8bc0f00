"""One cheating provider process among honest ones, with replication on: the cheater is
quarantined, loses its pay for the failed task, and the project completes at honest accuracy.

The cheater is a real agent (``bench/cheater.py``) whose training returns a zero delta; the
honest providers run one and two training threads, so their replicas are compared across
thread counts too.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from daig.examples import held_out_accuracy
from daig.hyperparams import Hyperparameters

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PARAMS = Hyperparameters(epochs=3, batch_size=32, total_tasks=8, task_size=4, passes=2)


def _sql(database_url: str, query: str, **params: object) -> list:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query), params).all())
    finally:
        engine.dispose()


def test_a_zero_delta_cheater_is_quarantined_and_the_project_completes(
    cluster_factory, digits_files, tmp_path: Path
) -> None:
    cluster = cluster_factory(replication="true")
    for index, threads in enumerate(("1", "2", "1"), start=1):
        cluster.account(f"honest-{index}", "honest-pass").close()
        cluster.provider(f"honest-{index}", f"honest-{index}", "honest-pass", "--threads", threads)
    cluster.account("cheater", "cheater-pass").close()
    password = tmp_path / "cheater-password"
    password.write_text("cheater-pass")
    repository = Path(__file__).resolve().parents[2]
    cluster.processes.start_argv(
        "cheater",
        [
            sys.executable,
            str(repository / "bench" / "cheater.py"),
            "--server",
            cluster.api_url,
            "--user",
            "cheater",
            "--password-file",
            str(password),
            "--cheat",
            "zero",
            "--threads",
            "1",
        ],
        env={"PYTHONPATH": str(repository)},
    )
    requestor = cluster.account("requestor", "requestor-pass")
    project = requestor.create_project("cheating", PARAMS)
    for kind in ("model", "data", "labels"):
        requestor.upload_file(project.id, kind, getattr(digits_files, kind))
    requestor.start(project.id)
    deadline = time.monotonic() + 600
    while requestor.project(project.id).state not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the project did not finish"
        time.sleep(1.0)
    final = requestor.project(project.id)
    assert final.state == "done", final.error

    quarantined = _sql(
        cluster.database_url,
        "SELECT u.username FROM provider_trust t JOIN users u ON u.id = t.provider_id"
        " WHERE t.quarantined_at IS NOT NULL",
    )
    assert [row[0] for row in quarantined] == ["cheater"], "the cheater, and only it"
    assert final.verification is not None
    assert final.verification.quarantined == ["cheater"]
    assert final.verification.disagreed >= 1 and final.verification.agreed >= 1
    counted = _sql(
        cluster.database_url,
        "SELECT count(*) FROM results r JOIN users u ON u.id = r.provider_id"
        " WHERE r.project_id = :p AND r.status = 'accepted' AND u.username = 'cheater'",
        p=uuid.UUID(str(project.id)),
    )[0][0]
    assert counted == 0, "no zero delta of the cheater counted in a round"
    reversed_pay = _sql(
        cluster.database_url,
        "SELECT count(*) FROM credit_transfers WHERE kind = 'reversal' AND project_id = :p",
        p=uuid.UUID(str(project.id)),
    )[0][0]
    assert reversed_pay >= 1

    # The operator's view: list, inspect, lift (straight on the database, like `daig audit`).
    listed = cluster.cli("quarantine", "list")
    assert listed.returncode == 0 and "cheater" in listed.stdout, listed.stderr
    shown = cluster.cli("quarantine", "show", "cheater")
    assert shown.returncode == 0, shown.stderr
    assert "quarantined" in shown.stdout and "1 invalid" in shown.stdout
    lifted = cluster.cli("quarantine", "lift", "cheater", "--note", "reviewed in the e2e test")
    assert lifted.returncode == 0, lifted.stderr
    after = cluster.cli("quarantine", "list", "--lifted")
    assert "lifted" in after.stdout
    assert "no quarantined accounts" in cluster.cli("quarantine", "list").stdout

    model = tmp_path / "trained.h5"
    requestor.download_model(project.id, model)
    accuracy = held_out_accuracy(model, digits_files.test_data, digits_files.test_labels)
    assert accuracy >= 0.85, f"held-out accuracy {accuracy:.3f}"
