"""Retention: a project's deltas are deleted ``DAIG_DELTA_RETENTION_HOURS`` after it ends.

A project that is done, failed or cancelled keeps its deltas for that long (so ``daig audit``
can recompute its rounds), then the scheduler deletes, from the blob store:

- every delta providers uploaded (``rounds/``), accepted, rejected or held alike;
- the outer optimizer's velocities (``outer/``): only the recomputation of rounds reads them;
- every weights version but the newest: they are only the rounds' intermediate steps.

What stays: the requestor's uploaded files, the final model, the newest weights version (the
current model of a cancelled or failed project, and what the audit compares the final model
with), and every database row (results, rounds, their metrics and evaluations). The project
row records when (``deltas_deleted_at``); ``daig audit`` then says its rounds can no longer be
recomputed. Deleting first and recording after makes a crash in between harmless: the next
pass deletes (nothing) again.

A straggler holding a presigned upload URL (valid ``DAIG_PRESIGN_TTL_SECONDS``) may still
upload a delta after a project ended, so a project swept before its last URL expired is swept
once more after that (with a retention of 0 it is swept at once, then again an hour later).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from daig import keys
from daig.blobstore import BlobStore
from daig.db.models import Project
from daig.settings import Settings
from daig.states import PROJECT_TABLE

log = logging.getLogger(__name__)

# Projects swept per pass: a backlog (retention just turned on) drains over a few passes
# instead of holding up the scheduler's tick.
BATCH = 20


@dataclass(frozen=True)
class RetentionPolicy:
    """How long deltas of ended projects are kept (None: for good)."""

    keep: timedelta | None
    upload_window: timedelta  # how long a presigned upload URL stays valid

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        hours = settings.delta_retention_hours
        return cls(
            keep=None if hours is None else timedelta(hours=hours),
            upload_window=timedelta(seconds=settings.presign_ttl_seconds),
        )


def due(session: Session, policy: RetentionPolicy, *, now: datetime) -> list[uuid.UUID]:
    """Ended projects whose deltas are due for deletion now, oldest ended first."""
    if policy.keep is None:
        return []
    last_upload = Project.finished_at + policy.upload_window
    query = (
        select(Project.id)
        .where(
            Project.state.in_(PROJECT_TABLE.final),
            Project.finished_at <= now - policy.keep,
            Project.deltas_deleted_at.is_(None)
            | ((Project.deltas_deleted_at < last_upload) & (last_upload <= now)),
        )
        .order_by(Project.finished_at)
        .limit(BATCH)
    )
    return list(session.scalars(query))


def delete_deltas(blobs: BlobStore, project_id: uuid.UUID, newest_version: int) -> None:
    """Delete a project's deltas, velocities and weights versions before ``newest_version``."""
    blobs.delete_prefix(keys.results_prefix(project_id))
    blobs.delete_prefix(keys.velocity_prefix(project_id))
    blobs.delete_keys([keys.weights_key(project_id, v) for v in range(newest_version)])


def sweep(
    sessions: sessionmaker[Session], blobs: BlobStore, policy: RetentionPolicy, *, now: datetime
) -> list[uuid.UUID]:
    """Delete the deltas of every project due now; return their ids."""
    with sessions() as session:
        ids = due(session, policy, now=now)
        rows = session.execute(
            select(Project.id, Project.current_round).where(Project.id.in_(ids))
        ).all()
        newest = {project_id: current_round for project_id, current_round in rows}
    swept = []
    for project_id in ids:
        try:
            delete_deltas(blobs, project_id, newest[project_id])
        except Exception:
            # One project's trouble (a permission, an outage) must not hold up the others;
            # it is tried again on the next pass.
            log.exception("project %s: deleting its deltas failed; retrying later", project_id)
            continue
        with sessions.begin() as session:
            session.execute(
                update(Project).where(Project.id == project_id).values(deltas_deleted_at=now)
            )
        log.info("project %s: deltas deleted by retention", project_id)
        swept.append(project_id)
    return swept


class Retention:
    """Runs ``sweep`` from the scheduler's tick, at most once per ``interval``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        settings: Settings,
        interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._policy = RetentionPolicy.from_settings(settings)
        self._interval = interval
        self._next: datetime | None = None

    def maybe_sweep(self, now: datetime) -> list[uuid.UUID]:
        if self._policy.keep is None or (self._next is not None and now < self._next):
            return []
        self._next = now + self._interval
        return sweep(self._sessions, self._blobs, self._policy, now=now)
