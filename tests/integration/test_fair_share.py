"""Projects share the volunteers: each keeps its window of task messages in the shared queue.

Volunteers take task messages in order; each claim of a project's queued task publishes that
project's next one. So every project holds ``dispatch_window x share`` places in the queue, a
big project cannot bury a small one's tasks, and claims go to projects in proportion to their
shares. Real API (with a small window), scheduler, Postgres and RabbitMQ; the volunteer is
played by the test, taking messages one at a time as an agent does.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.provider_broker import provider_broker
from daig.broker import BrokerSession
from daig.client import ClientError, DaigClient
from daig.contract.messages import TrainTask
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig_scheduler.handlers import Scheduler
from tests.helpers.accounts import new_user
from tests.helpers.projects import create_started_project, write_small_data
from tests.helpers.services import ApiServer

WINDOW = 4


@pytest.fixture
def windowed(settings: Settings) -> Iterator[ApiServer]:
    with ApiServer(settings.model_copy(update={"dispatch_window": WINDOW})) as server:
        yield server


def _start(
    server: ApiServer,
    owner: DaigClient,
    digits_files: Any,
    tmp_path: Path,
    params: Hyperparameters,
    scheduler: Scheduler,
    broker: BrokerSession,
) -> uuid.UUID:
    data = write_small_data(tmp_path / uuid.uuid4().hex[:6], rows=100)
    project = create_started_project(owner, digits_files.model, data, params)
    project_id = project.id
    scheduler.reconcile(project_id, broker)
    return project_id


def _volunteer(client: DaigClient, claims: int, queued: int | None = None) -> list[uuid.UUID]:
    """Take task messages in queue order and claim them; the projects of the claims made.

    With ``queued``, wait after each claim until the queue holds that many messages again
    (the claim's refill is published a few milliseconds after it), as a volunteer whose
    next task comes a moment later would find it.
    """
    projects: list[uuid.UUID] = []
    with provider_broker(client) as broker:
        channel = broker.connection.channel()
        deadline = time.monotonic() + 60
        while len(projects) < claims:
            assert time.monotonic() < deadline, f"only {len(projects)} claims made"
            method, _props, body = channel.basic_get("daig.tasks", auto_ack=True)
            if method is None:
                time.sleep(0.02)  # the refill is being published
                continue
            task = TrainTask.model_validate_json(body)
            try:
                client.claim(task.task_id, "volunteer")
            except ClientError:
                continue
            projects.append(task.project_id)
            while queued is not None and time.monotonic() < deadline:
                depth = channel.queue_declare("daig.tasks", passive=True).method.message_count
                if depth >= queued:
                    break
                time.sleep(0.01)
    return projects


def test_a_small_project_is_not_buried_under_a_big_ones_tasks(
    windowed: ApiServer,
    settings: Settings,
    sessions: Any,
    broker_session: BrokerSession,
    digits_files: Any,
    tmp_path: Path,
) -> None:
    scheduler = Scheduler(sessions, windowed.settings)
    owner = new_user(windowed.url, "requestor")
    big = _start(
        windowed,
        owner,
        digits_files,
        tmp_path,
        Hyperparameters(total_tasks=40, task_size=40),
        scheduler,
        broker_session,
    )
    small = _start(
        windowed,
        owner,
        digits_files,
        tmp_path,
        Hyperparameters(total_tasks=3, task_size=3),
        scheduler,
        broker_session,
    )
    order = _volunteer(new_user(windowed.url, "volunteer"), WINDOW + 3)
    # Published first with 40 tasks, the big project still had only its window queued.
    assert Counter(order) == {big: WINDOW, small: 3}


def test_claims_go_to_projects_in_proportion_to_their_shares(
    windowed: ApiServer,
    sessions: Any,
    broker_session: BrokerSession,
    digits_files: Any,
    tmp_path: Path,
) -> None:
    scheduler = Scheduler(sessions, windowed.settings)
    owner = new_user(windowed.url, "requestor")
    full = _start(
        windowed,
        owner,
        digits_files,
        tmp_path,
        Hyperparameters(total_tasks=60, task_size=60),
        scheduler,
        broker_session,
    )
    half = _start(
        windowed,
        owner,
        digits_files,
        tmp_path,
        Hyperparameters(total_tasks=60, task_size=60, share=0.5),
        scheduler,
        broker_session,
    )
    # Windows of 4 and 2 (half the share): six messages queued, refilled after each claim.
    order = _volunteer(new_user(windowed.url, "volunteer"), 36, queued=WINDOW + WINDOW // 2)
    counts = Counter(order)
    assert counts[full] + counts[half] == 36
    assert counts[full] == pytest.approx(2 * counts[half], abs=2)
