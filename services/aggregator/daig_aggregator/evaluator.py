"""Per-round evaluation: each new global model scored on the requestor's validation files.

A thread of the aggregator process looks for closed rounds of projects that have validation
files and no evaluation yet, evaluates weights version r+1 in a child process, and stores the
loss and metrics in ``rounds.evaluation`` (shown by the API, ``daig project status`` and the
GUI charts). It is driven by the database, so a restart simply picks up where it was; a
failed evaluation is stored as such and not retried forever.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from daig import keys, tempdirs
from daig.blobstore import BlobNotFound, BlobStore
from daig.db.models import Project, ProjectFile, Round
from daig.logs import log_context
from daig.sandbox import SandboxedChild, start_sandboxed
from daig.states import PROJECT_TABLE
from daig_aggregator.evaluation_child import child_main

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 600.0


class Evaluator:
    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._process: SandboxedChild | None = None
        self._pipe: Connection | None = None
        # Per project: its model and validation files, downloaded once (removed by shutdown,
        # or once the project has ended).
        self._cache = tempdirs.process_dir("eval")

    @property
    def cache(self) -> Path:
        """The directory of its cached files (``daig-eval-<pid>-*``)."""
        return self._cache

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Evaluate pending rounds until ``stop`` is set."""
        try:
            while not stop.is_set():
                try:
                    if not self.evaluate_next():
                        self.prune()
                        stop.wait(interval)
                except Exception:
                    log.exception("evaluation failed; retrying shortly")
                    stop.wait(5 * interval)
        finally:
            self.shutdown()

    def evaluate_next(self) -> bool:
        """Evaluate the oldest closed, unevaluated round; False if there is none."""
        with self._sessions() as session:
            found = session.execute(
                select(Round.project_id, Round.index)
                .where(
                    Round.closed_at.is_not(None),
                    Round.evaluation.is_(None),
                    exists().where(
                        ProjectFile.project_id == Round.project_id,
                        ProjectFile.kind == "validation_data",
                    ),
                )
                .order_by(Round.closed_at)
                .limit(1)
            ).first()
            if found is None:
                return False
            project_id, index = found
            project = session.get(Project, project_id)
            files = {
                f.kind: f
                for f in session.scalars(
                    select(ProjectFile).where(ProjectFile.project_id == project_id)
                )
            }
        assert project is not None
        evaluation = self._evaluate(project, files, index + 1)
        with self._sessions.begin() as session:
            row = session.get(Round, (project_id, index))
            if row is not None and row.evaluation is None:
                row.evaluation = evaluation
        with log_context(project=project_id, round=index):
            log.info(
                "project %s round %s: evaluated weights version %s: %s",
                project_id,
                index + 1,
                index + 1,
                evaluation,
            )
        return True

    def _evaluate(
        self, project: Project, files: dict[str, ProjectFile], version: int
    ) -> dict[str, Any]:
        if "validation_labels" not in files:
            return {"error": "validation labels are missing; upload validation_labels"}
        directory = self._cache / str(project.id)
        directory.mkdir(exist_ok=True)
        local = {
            kind: self._fetch(files[kind].blob_key, directory / f"{kind}.bin")
            for kind in ("model", "validation_data", "validation_labels")
        }
        weights = directory / f"w{version}.dwt"
        try:
            self._blobs.download(keys.weights_key(project.id, version), weights)
        except BlobNotFound:
            # Deleted by retention (DAIG_DELTA_RETENTION_HOURS) before it was evaluated.
            return {"error": f"weights version {version} no longer exists (deleted by retention)"}
        try:
            reply = self._ask(
                {
                    "model_path": str(local["model"].with_suffix(".h5")),
                    "model_sha256": files["model"].sha256,
                    "weight_schema": project.weight_schema,
                    "weights_path": str(weights),
                    "x_path": str(local["validation_data"]),
                    "y_path": str(local["validation_labels"]),
                    "batch_size": max(project.batch_size, 256),
                }
            )
        finally:
            weights.unlink(missing_ok=True)
        return reply["metrics"] if reply["ok"] else {"error": reply["error"]}

    def _fetch(self, key: str, path: Path) -> Path:
        """The blob at ``path``, downloaded once per project (files never change after start)."""
        if path.suffix == ".bin" and "model" in path.stem:
            path = path.with_suffix(".h5")
        elif path.suffix == ".bin":
            path = path.with_suffix(".npy")
        if not path.exists():
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            self._blobs.download(key, partial)
            partial.replace(path)
        return path

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        pipe = self._ensure_child()
        pipe.send(request)
        if not pipe.poll(TIMEOUT_SECONDS):
            self.close()
            return {"ok": False, "error": f"evaluation took over {TIMEOUT_SECONDS:.0f} s"}
        try:
            return dict(pipe.recv())
        except EOFError:
            self.close()
            return {"ok": False, "error": "the evaluation process died (out of memory?)"}

    def _ensure_child(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._pipe is not None:
            return self._pipe
        self.close()
        # The child gets no database, broker or storage secrets: only sandbox_environment().
        self._process = start_sandboxed(child_main, name="daig-evaluator")
        self._pipe = pipe = self._process.connection
        return pipe

    def prune(self) -> None:
        """Drop the cached files of projects that ended (or no longer exist)."""
        cached = {p.name: p for p in self._cache.iterdir() if p.is_dir()}
        if not cached:
            return
        ids = [uuid.UUID(name) for name in cached]
        with self._sessions() as session:
            active = {
                str(i)
                for i in session.scalars(
                    select(Project.id).where(
                        Project.id.in_(ids), Project.state.not_in(PROJECT_TABLE.final)
                    )
                )
            }
        for name, path in cached.items():
            if name not in active:
                shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Stop the evaluation child (a new one starts for the next evaluation)."""
        if self._process is not None:
            self._process.close()  # killed, reaped, its pipe closed
        self._process = self._pipe = None

    def shutdown(self) -> None:
        """Stop the child and remove the cache directory; for the end of the process."""
        self.close()
        tempdirs.remove(self._cache)
