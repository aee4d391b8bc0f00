"""Volunteer work done "by hand" for the GUI tests: tasks claimed over HTTP, synthetic deltas
uploaded to the presigned URLs, results judged by a real ``Aggregator`` on the API's database,
so the ledger entries and verdicts the GUI shows are the ones the system really records."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from pathlib import Path

from daig import topology
from daig.blobstore import open_blob_store
from daig.broker import BrokerSession, connect
from daig.client import DaigClient
from daig.contract.http import ClaimGrant, ProjectOut
from daig.db.session import make_engine, make_sessionmaker
from daig.hyperparams import Hyperparameters
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig_scheduler.handlers import Scheduler
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import create_started_project, write_small_data
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, random_delta


def publish_tasks(gui_api, project_id: uuid.UUID) -> None:
    """Have the scheduler publish the started project's first tasks (none runs in GUI tests)."""
    settings = gui_api.settings
    engine = make_engine(settings.database_url)
    connection = connect(settings.amqp_url)
    try:
        channel = connection.channel()
        topology.declare(channel)
        channel.confirm_delivery()
        Scheduler(make_sessionmaker(engine), settings).reconcile(
            project_id, BrokerSession(connection, channel)
        )
    finally:
        connection.close()
        engine.dispose()


def train_by_hand(
    gui_api,
    digits_files,
    tmp_path: Path,
    requestor: DaigClient,
    volunteer: Provider,
    *,
    corrupt_shards: Collection[int] = (),
) -> tuple[ProjectOut, list[ClaimGrant], int]:
    """Start a 3-task project and have ``volunteer`` deliver all three (the shards in
    ``corrupt_shards`` with a wrong checksum, so they are rejected); returns the project, the
    grants and the model's parameter count."""
    data = write_small_data(tmp_path / "data", rows=10)
    params = Hyperparameters(total_tasks=3, task_size=3, epochs=1)
    project = create_started_project(requestor, digits_files.model, data, params)
    settings = gui_api.settings
    publish_tasks(gui_api, project.id)
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        grants = [
            volunteer.claim(m.task_id)
            for m in drain_tasks(settings.amqp_url)
            if m.project_id == project.id
        ]
        assert len(grants) == 3
        schema = WeightSchema.of(read_weights(digits_files.model))
        aggregator = DirectAggregator(sessions, open_blob_store(settings), settings)
        for seed, grant in enumerate(grants):
            bad = grant.shard in corrupt_shards
            message = volunteer.result(
                grant, random_delta(schema, seed), **({"sha256": "0" * 64} if bad else {})
            )
            verdict = aggregator.handle(message)
            assert verdict is not None
            assert verdict.status == ("rejected" if bad else "accepted")
    finally:
        engine.dispose()
    return project, grants, schema.parameters
