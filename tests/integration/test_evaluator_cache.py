"""The aggregator's evaluator keeps each project's files in a cache directory of its own: the
files of ended projects go when it is idle, the directory itself when it shuts down."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from daig.blobstore import BlobStore
from daig.hyperparams import Hyperparameters
from daig_aggregator.evaluator import Evaluator
from tests.helpers.projects import RoundsByHand, Started


def test_cache_of_ended_projects_is_pruned_and_the_directory_removed_on_shutdown(
    start_project: Callable[..., Started],
    rounds_by_hand: RoundsByHand,
    server_blobs: BlobStore,
    sessions: sessionmaker[Session],
) -> None:
    ended = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=1))
    handed_in = rounds_by_hand.end(ended, seed=0)
    assert [verdict.status for verdict in handed_in.verdicts] == ["accepted"] * 3
    running = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=2))

    evaluator = Evaluator(sessions, server_blobs)
    cache = evaluator.cache
    assert cache.is_dir() and cache.name.startswith(f"daig-eval-{os.getpid()}-")
    for project_id in (ended.id, running.id, uuid.uuid4()):  # the last: deleted since
        (cache / str(project_id)).mkdir()
        (cache / str(project_id) / "model.h5").write_bytes(b"cached")
    evaluator.prune()
    assert sorted(p.name for p in cache.iterdir()) == [str(running.id)]

    stop = threading.Event()
    stop.set()  # run() returns at once, and shuts down on its way out
    evaluator.run(stop)
    assert not cache.exists()
