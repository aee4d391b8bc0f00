"""Running a project through injected faults, then proving nothing was lost or counted twice.

``FaultRun`` starts a small digits project on a cluster of real processes with short leases;
``finish_and_verify`` waits for it to finish and checks the guarantees: exactly R rounds, each
closed by exactly K accepted results; every round's weights recomputed from its accepted
deltas (none lost, none twice); every result a provider published recorded exactly once; and
held-out accuracy as good as the fault-free reference.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from daig.blobstore import open_blob_store
from daig.broker import queue_depths
from daig.client import DaigClient
from daig.db.session import make_sessionmaker
from daig.examples import held_out_accuracy
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig_aggregator.audit import AuditReport, audit_project
from tests.helpers.waiting import wait_until

# Short leases and ticks so lost providers are noticed within seconds.
FAULT_SETTINGS = {
    "lease_seconds": "6",
    "straggler_floor_seconds": "4",
    "scheduler_tick_seconds": "0.5",
}
PARAMS = Hyperparameters(epochs=4, batch_size=32, total_tasks=6, task_size=3, passes=2)
ACCURACY_TOLERANCE = 0.03
SENT = re.compile(r"result ([0-9a-f-]{36}) sent")


@dataclass
class FaultRun:
    cluster: Any
    client: DaigClient
    project_id: str
    files: Any

    @classmethod
    def start(
        cls,
        cluster: Any,
        files: Any,
        providers: tuple[str, ...] = ("prov1", "prov2"),
        params: Hyperparameters = PARAMS,
    ) -> FaultRun:
        client = cluster.account("requestor", "requestor-pass")
        for name in providers:
            cluster.account(name, f"{name}-password").close()
            cluster.provider(name, name, f"{name}-password")
        project = client.create_project("faults", params)
        for kind in ("model", "data", "labels"):
            client.upload_file(project.id, kind, getattr(files, kind))
        client.start(project.id)
        return cls(cluster, client, str(project.id), files)

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(self.cluster.database_url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(query), params).all())
        finally:
            engine.dispose()

    def project(self) -> dict[str, Any]:
        for _ in range(120):  # the API may be the thing that was just killed
            try:
                return self.client.project(self.project_id)
            except Exception:
                time.sleep(0.5)
        return self.client.project(self.project_id)

    def accepted_in_current_round(self) -> int:
        rows = self.sql(
            "SELECT count(*) FROM results r JOIN projects p ON p.id = r.project_id "
            "WHERE p.id = :id AND r.status = 'accepted' AND r.round_index = p.current_round",
            id=self.project_id,
        )
        return int(rows[0][0])

    def wait_mid_round(self, round_index: int = 1, timeout: float = 180) -> None:
        """Until round ``round_index`` is open and has at least one accepted result."""
        wait_until(
            lambda: self.project().round >= round_index and self.accepted_in_current_round() >= 1,
            timeout,
            interval=0.05,
            what=f"round {round_index} to be under way",
        )

    def active_claim_of(self, username: str) -> bool:
        rows = self.sql(
            "SELECT count(*) FROM claims c JOIN users u ON u.id = c.provider_id "
            "WHERE u.username = :name AND c.state = 'active'",
            name=username,
        )
        return int(rows[0][0]) > 0


def finish_and_verify(
    run: FaultRun, clean_accuracy: float, tmp_path: Path, timeout: float = 420
) -> AuditReport:
    final = wait_until(
        lambda: (p := run.project()).state in ("done", "failed", "cancelled") and p,
        timeout,
        interval=1.0,
        what="the project to finish",
    )
    assert final.state == "done", final
    wait_until(
        lambda: queue_depths(run.cluster.amqp_url)["daig.results"] == 0,
        60,
        what="every result message to be handled",
    )
    time.sleep(1.0)  # the last delivery may still be in flight to the aggregator
    report = _audit(run)
    total, k = int(final.total_rounds), PARAMS.task_size
    assert report.ok, report.problems
    assert (report.rounds_closed, report.rounds_verified) == (total, total)
    assert report.accepted == total * k
    assert report.lost == 0 and report.double_counted == 0
    _every_sent_result_recorded(run)
    model = tmp_path / "final.h5"
    run.client.download_model(run.project_id, model)
    accuracy = held_out_accuracy(model, run.files.test_data, run.files.test_labels)
    assert accuracy >= clean_accuracy - ACCURACY_TOLERANCE, (accuracy, clean_accuracy)
    return report


def _audit(run: FaultRun) -> AuditReport:
    env = run.cluster.processes.env
    settings = Settings(
        database_url=env["DAIG_DATABASE_URL"],
        blob_url=env["DAIG_BLOB_URL"],
        secret_key=env["DAIG_SECRET_KEY"],
    )
    engine = create_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return audit_project(
                session=session,
                blobs=open_blob_store(settings),
                project_id=uuid.UUID(run.project_id),
            )
    finally:
        engine.dispose()


def _every_sent_result_recorded(run: FaultRun) -> None:
    sent: set[str] = set()
    for log in run.cluster.processes.log_dir.glob("*.log"):
        sent |= set(SENT.findall(log.read_text(errors="replace")))
    assert sent, "providers published no results?"
    recorded = {str(row[0]) for row in run.sql("SELECT message_id FROM results")}
    missing = sent - recorded
    assert not missing, f"{len(missing)} published results were never recorded: {missing}"
