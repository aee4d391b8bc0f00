"""Retention: the deltas of projects that ended longer ago than ``DAIG_DELTA_RETENTION_HOURS``
are deleted by the scheduler, on the local blob store and on S3 (moto's server), and
``daig audit`` says so instead of failing.

Projects are real: started through the API, their rounds closed by the real aggregator with
deltas handed in over the real claim path; only their end time is moved into the past.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from daig import keys
from daig.blobstore import BlobStore
from daig.db.models import Project
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig_aggregator.audit import audit_project, format_report
from daig_scheduler.handlers import Scheduler
from daig_scheduler.retention import Retention, RetentionPolicy, sweep
from tests.helpers.cli import run_daig
from tests.helpers.projects import HandedIn, RoundsByHand, Started

ONE_ROUND = Hyperparameters(total_tasks=3, task_size=3, passes=1)
TWO_ROUNDS = Hyperparameters(total_tasks=3, task_size=3, passes=2)
WEEK = RetentionPolicy(keep=timedelta(days=7), upload_window=timedelta(hours=1))


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test's settings on the local blob store, or on a bucket of moto's S3 server."""
    if request.param == "local":
        return settings
    endpoint = request.getfixturevalue("s3_endpoint")
    return settings.model_copy(
        update={
            "blob_url": f"s3://daig-retention-{uuid.uuid4().hex[:12]}/installation",
            "s3_endpoint_url": endpoint,
            "s3_access_key": "test",
            "s3_secret_key": "test",
        }
    )


def _accepted(handed: HandedIn) -> list[str]:
    """The keys of a round's results, each of them accepted."""
    for verdict in handed.verdicts:
        assert verdict.status == "accepted"
    return handed.keys


def _ended_ago(sessions: sessionmaker[Session], started: Started, days: float) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Project)
            .where(Project.id == started.id)
            .values(finished_at=datetime.now(UTC) - timedelta(days=days))
        )


def _kept_blobs(blobs: BlobStore, project_id: uuid.UUID, newest: int) -> None:
    """What retention never deletes: the newest weights, the final model, the files."""
    assert blobs.exists(keys.weights_key(project_id, newest))
    assert blobs.exists(keys.file_key(project_id, "model"))
    assert blobs.exists(keys.file_key(project_id, "data"))


def _deleted_at(sessions: sessionmaker[Session], project_id: uuid.UUID) -> datetime | None:
    with sessions() as session:
        project = session.get(Project, project_id)
        assert project is not None
        return project.deltas_deleted_at


def test_deltas_of_projects_ended_past_the_retention_are_deleted(
    start_project: Callable[..., Started],
    rounds_by_hand: RoundsByHand,
    server_blobs: BlobStore,
    sessions: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    old = start_project(ONE_ROUND)
    old_deltas = _accepted(rounds_by_hand.end(old, seed=0))
    _ended_ago(sessions, old, days=8)
    recent = start_project(ONE_ROUND)
    recent_deltas = _accepted(rounds_by_hand.end(recent, seed=10))
    _ended_ago(sessions, recent, days=6)
    running = start_project(TWO_ROUNDS)
    running_deltas = _accepted(rounds_by_hand.hand_in(seed=20))
    with sessions.begin() as session:  # long running: only the end of a project counts
        session.execute(
            update(Project)
            .where(Project.id == running.id)
            .values(started_at=datetime.now(UTC) - timedelta(days=30))
        )
    every = old_deltas + recent_deltas + running_deltas
    assert all(server_blobs.exists(key) for key in every)
    # The audit recomputes the old project's round while its deltas are there.
    with sessions() as session:
        before = audit_project(session=session, blobs=server_blobs, project_id=old.id)
    assert before.ok and before.rounds_verified == 1, before.problems

    now = datetime.now(UTC)
    assert sweep(sessions, server_blobs, WEEK, now=now) == [old.id]

    assert not any(server_blobs.exists(key) for key in old_deltas)
    assert not server_blobs.exists(keys.weights_key(old.id, 0))  # an intermediate version
    _kept_blobs(server_blobs, old.id, newest=1)
    assert server_blobs.exists(keys.final_model_key(old.id))
    assert all(server_blobs.exists(key) for key in recent_deltas + running_deltas)
    assert server_blobs.exists(keys.weights_key(recent.id, 0))
    assert server_blobs.exists(keys.weights_key(running.id, 0))
    deleted_at = _deleted_at(sessions, old.id)
    assert deleted_at is not None and abs(deleted_at - now) < timedelta(seconds=1)
    assert _deleted_at(sessions, recent.id) is None
    assert _deleted_at(sessions, running.id) is None
    # Nothing more is due: a second pass deletes nothing and records nothing new.
    assert sweep(sessions, server_blobs, WEEK, now=now + timedelta(minutes=5)) == []
    assert _deleted_at(sessions, old.id) == deleted_at

    # The audit still checks what it can and says why it cannot recompute the rounds.
    with sessions() as session:
        after = audit_project(session=session, blobs=server_blobs, project_id=old.id)
    assert after.ok, after.problems
    assert after.rounds_verified == 0 and after.lost == 0 and after.accepted == 3
    text = format_report(after)
    assert f"deltas deleted on {deleted_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC by retention" in text
    assert "rounds before that cannot be recomputed" in text

    # `daig audit`, as an operator runs it, on the same database and blob store.
    environment = {
        "DAIG_DATABASE_URL": settings.database_url,
        "DAIG_BLOB_URL": settings.blob_url,
        "DAIG_SECRET_KEY": settings.secret_key,
    }
    if settings.s3_endpoint_url:
        environment |= {
            "DAIG_S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "DAIG_S3_ACCESS_KEY": "test",
            "DAIG_S3_SECRET_KEY": "test",
        }
    done = run_daig(tmp_path, "audit", str(old.id), env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = " ".join((done.stdout + done.stderr).split())  # the console wraps lines
    assert "by retention" in printed and "rounds before that cannot be recomputed" in printed
    assert "PROBLEM" not in printed


def test_a_delta_uploaded_after_the_sweep_goes_once_the_upload_urls_expired(
    start_project: Callable[..., Started],
    rounds_by_hand: RoundsByHand,
    server_blobs: BlobStore,
    sessions: sessionmaker[Session],
) -> None:
    """Retention 0: deleted at once, and once more after a straggler's URL could be used."""
    at_once = RetentionPolicy(keep=timedelta(0), upload_window=timedelta(hours=1))
    started = start_project(ONE_ROUND)
    deltas = _accepted(rounds_by_hand.end(started, seed=0))
    _ended_ago(sessions, started, days=0)
    now = datetime.now(UTC)
    assert sweep(sessions, server_blobs, at_once, now=now) == [started.id]
    assert not any(server_blobs.exists(key) for key in deltas)
    # A straggler uploads with its still valid presigned URL after the project ended.
    late = keys.result_key(started.id, 0, uuid.uuid4(), uuid.uuid4())
    server_blobs.put_bytes(late, b"late delta")
    assert sweep(sessions, server_blobs, at_once, now=now + timedelta(minutes=30)) == []
    assert server_blobs.exists(late)  # its URL may still be in use: not yet
    later = now + timedelta(hours=1, minutes=1)
    assert sweep(sessions, server_blobs, at_once, now=later) == [started.id]
    assert not server_blobs.exists(late)
    assert _deleted_at(sessions, started.id) == later
    assert sweep(sessions, server_blobs, at_once, now=later + timedelta(days=30)) == []


def test_keep_forever_deletes_nothing_and_the_scheduler_tick_sweeps(
    start_project: Callable[..., Started],
    rounds_by_hand: RoundsByHand,
    broker_session,
    server_blobs: BlobStore,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    started = start_project(ONE_ROUND)
    deltas = _accepted(rounds_by_hand.end(started, seed=0))
    _ended_ago(sessions, started, days=365)
    forever = settings.model_copy(update={"delta_retention_hours": None})
    keeper = Retention(sessions, server_blobs, forever)
    assert keeper.maybe_sweep(datetime.now(UTC)) == []
    assert all(server_blobs.exists(key) for key in deltas)
    # The scheduler's periodic pass runs retention with the default week.
    ticking = Scheduler(sessions, settings, Retention(sessions, server_blobs, settings))
    ticking.tick(broker_session)
    assert not any(server_blobs.exists(key) for key in deltas)
    assert _deleted_at(sessions, started.id) is not None
