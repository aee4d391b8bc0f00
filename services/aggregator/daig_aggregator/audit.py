"""Auditing a project's history: was every accepted update counted exactly once?

For every closed round it recomputes weights version r+1 from version r and the round's
accepted deltas (with the project's aggregation) and compares with the stored version; it
checks each round closed with exactly K accepted results from K distinct tasks of that
round, and that the final model holds the last version. Used by ``daig audit``, the fault
tests and the chaos benchmark.

Once retention (``DAIG_DELTA_RETENTION_HOURS``) deleted a project's deltas, its rounds cannot
be recomputed: the report says so and when (``deltas_deleted_at``), still checks what the
database and the kept blobs can prove (K accepted results per round, none counted twice, the
final model), and is not a failure for that reason.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from daig import keys, tempdirs
from daig.blobstore import BlobStore
from daig.db.models import Project, ProviderTrust, Result, ResultStatus, Round, Task, User
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights
from daig_aggregator.outer import outer_step
from daig_aggregator.rounds import project_strategy, stored_velocity

VERIFICATION = (ResultStatus.HELD, ResultStatus.AGREED, ResultStatus.DISAGREED)


@dataclass
class AuditReport:
    project_id: uuid.UUID
    state: str
    total_rounds: int
    rounds_closed: int = 0
    rounds_verified: int = 0
    accepted: int = 0
    lost: int = 0  # accepted updates missing from (or not reflected in) the weights
    double_counted: int = 0  # updates counted more than once
    rejected: Counter[str] = field(default_factory=Counter)
    # replicated results: held (waiting), agreed and disagreed with their shard's majority
    verification: Counter[str] = field(default_factory=Counter)
    quarantined: list[str] = field(default_factory=list)  # accounts quarantined in this project
    problems: list[str] = field(default_factory=list)
    # when retention deleted the deltas (rounds then cannot be recomputed)
    deltas_deleted_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.double_counted == 0


def audit_project(*, session: Session, blobs: BlobStore, project_id: uuid.UUID) -> AuditReport:
    project = session.get(Project, project_id)
    if project is None or project.weight_schema is None or project.total_rounds is None:
        raise ValueError(f"project {project_id} does not exist or never started")
    schema = WeightSchema.from_json(project.weight_schema)
    report = AuditReport(project.id, project.state, project.total_rounds)
    report.deltas_deleted_at = project.deltas_deleted_at
    results = session.scalars(select(Result).where(Result.project_id == project.id)).all()
    for result in results:
        if result.status in VERIFICATION:
            report.verification[result.status] += 1
        elif result.status != ResultStatus.ACCEPTED:
            report.rejected[result.reason or result.status] += 1
    report.quarantined = list(
        session.scalars(
            select(User.username)
            .join(ProviderTrust, ProviderTrust.provider_id == User.id)
            .where(ProviderTrust.quarantine_project == project.id)
            .order_by(User.username)
        )
    )
    accepted = [r for r in results if r.status == ResultStatus.ACCEPTED]
    report.accepted = len(accepted)
    per_task = Counter(r.task_id for r in accepted)
    report.double_counted += sum(n - 1 for n in per_task.values() if n > 1)
    rounds = {
        r.index: r for r in session.scalars(select(Round).where(Round.project_id == project.id))
    }
    report.rounds_closed = sum(1 for r in rounds.values() if r.closed_at is not None)
    if report.rounds_closed != project.current_round:
        report.problems.append(
            f"{report.rounds_closed} rounds closed but the project is at "
            f"round {project.current_round}"
        )
    for index in range(project.current_round):
        _audit_round(session, blobs, project, schema, index, accepted, report)
    if project.final_model_key is not None:
        _audit_final_model(blobs, project, schema, report)
    return report


def _audit_round(
    session: Session,
    blobs: BlobStore,
    project: Project,
    schema: WeightSchema,
    index: int,
    accepted: list[Result],
    report: AuditReport,
) -> None:
    these = [r for r in accepted if r.round_index == index]
    tasks = {
        t.id: t
        for t in session.scalars(
            select(Task).where(Task.project_id == project.id, Task.round_index == index)
        )
    }
    firsts = {t.id for t in tasks.values() if t.replica_of is None}

    def shard_of(result: Result) -> uuid.UUID | None:
        """The shard's first task: a replicated shard's result may be any replica's."""
        task = tasks.get(result.task_id)
        return None if task is None else (task.replica_of or task.id)

    counted = [shard_of(r) for r in these]
    if len(these) != project.task_size or set(counted) != firsts or len(set(counted)) != len(these):
        report.problems.append(
            f"round {index}: {len(these)} accepted results for {len(set(counted))} of "
            f"{len(firsts)} shards; expected exactly one for each of {project.task_size}"
        )
    if report.deltas_deleted_at is not None:
        return  # counted above; nothing left to recompute it from
    deltas = []

    def slot_of(result: Result) -> int:
        first = shard_of(result)
        return tasks[first].slot if first is not None else 0

    for result in sorted(these, key=slot_of):
        if result.blob_key is None or not blobs.exists(result.blob_key):
            report.lost += 1
            report.problems.append(f"round {index}: accepted delta {result.blob_key} is missing")
            continue
        deltas.append((decode_weights(blobs.get_bytes(result.blob_key), schema), result.samples))
    if not deltas:
        return
    strategy = project_strategy(project)
    base = decode_weights(blobs.get_bytes(keys.weights_key(project.id, index)), schema)
    stored = decode_weights(blobs.get_bytes(keys.weights_key(project.id, index + 1)), schema)
    velocity = stored_velocity(blobs, project, schema, index)
    expected, _ = outer_step(
        base,
        strategy.combine(deltas),
        velocity,
        kind=project.outer_optimizer,
        learning_rate=project.outer_learning_rate,
        momentum=project.outer_momentum,
    )
    if all(np.allclose(s, e, rtol=1e-5, atol=1e-7) for s, e in zip(stored, expected, strict=True)):
        report.rounds_verified += 1
    else:
        report.lost += len(these)
        report.problems.append(
            f"round {index}: stored weights v{index + 1} differ from v{index} "
            "plus the mean of its accepted deltas"
        )


def _audit_final_model(
    blobs: BlobStore, project: Project, schema: WeightSchema, report: AuditReport
) -> None:
    assert project.final_model_key is not None and project.total_rounds is not None
    last = decode_weights(
        blobs.get_bytes(keys.weights_key(project.id, project.total_rounds)), schema
    )
    with tempdirs.scratch("audit") as directory:
        path = directory / "final.h5"
        blobs.download(project.final_model_key, path)
        final = read_weights(path)
    if not all(np.array_equal(a, b) for a, b in zip(final, last, strict=True)):
        report.problems.append("the final model does not hold the last weights version")


def format_report(report: AuditReport) -> str:
    lines = [
        f"project {report.project_id} ({report.state}): {report.rounds_closed}/"
        f"{report.total_rounds} rounds closed, {report.rounds_verified} verified by recomputation",
        f"accepted updates {report.accepted}, lost {report.lost}, double-counted "
        f"{report.double_counted}",
        "rejected or failed: "
        + (", ".join(f"{k} {v}" for k, v in sorted(report.rejected.items())) or "none"),
        "replicated results: "
        + (", ".join(f"{k} {v}" for k, v in sorted(report.verification.items())) or "none")
        + "; quarantined here: "
        + (", ".join(report.quarantined) or "none"),
    ]
    if report.deltas_deleted_at is not None:
        deleted = report.deltas_deleted_at.astimezone(UTC)
        lines.append(
            f"deltas deleted on {deleted:%Y-%m-%d %H:%M} UTC by retention "
            "(DAIG_DELTA_RETENTION_HOURS); rounds before that cannot be recomputed"
        )
    lines += [f"PROBLEM: {p}" for p in report.problems]
    return "\n".join(lines)
