"""A provider's logs of real tasks, logging as ``daig provider`` does (``setup_logging``), at
INFO: a task fetch (a task of a real project claimed from the real API, its model and shard
rows downloaded through the grant's presigned URLs) shows no presigned URL, and the training
process started after a task is not logged as that task's."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from daig.broker import Delivery, Outcome
from daig.contract.messages import TrainTask
from daig.hyperparams import Hyperparameters
from daig.logs import setup_logging
from daig.planning import shard_rows
from provider_agent.status import STARTING_TENSORFLOW
from provider_agent.trainer import RowsLike, TrainingCancelled
from tests.helpers.agents import volunteer_agent
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider


class LoadOnly:
    """Stands in for the training process, which the fetch does not need; records the load."""

    def __init__(self) -> None:
        self.models: list[str] = []

    def prepare(self, model_path: str, model_sha256: str, rows: RowsLike | None = None) -> None:
        self.models.append(model_path)

    def close(self) -> None:
        pass


class NoBroker:
    """The task's broker session, which a task cancelled before training never uses."""

    def pump(self, seconds: float) -> None:
        raise AssertionError("the broker is not needed")


class CancelledThenRestarted(LoadOnly):
    """A training process that a Stop cancels mid-task; the agent then starts a new one."""

    state = "stopped"
    startup_error = None

    def run(self, job: object, **kwargs: object) -> None:
        raise TrainingCancelled

    def poll(self) -> str:
        return self.state

    def start(self) -> None:
        self.state = "starting"


@pytest.fixture
def provider_logging() -> Iterator[io.StringIO]:
    """The provider's logging set up for the test, its lines kept in the buffer yielded; the
    test runner's put back after. (Not ``capsys``: a handler holding its stream from the
    fixture's setup would write to a stream closed by the time the test runs.)"""
    root, quiet = logging.getLogger(), ("httpx", "httpcore", "pika", "botocore")
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in quiet}
    setup_logging("INFO", json_lines=False, process="provider")
    lines = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(lines)
    yield lines
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_a_task_fetch_logs_no_presigned_url_at_info(
    start_project: Callable[..., Started],
    api_server,
    make_user,
    amqp_url: str,
    tmp_path: Path,
    provider_logging: io.StringIO,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    volunteer = make_user(api_server.url, "vol")
    grant = Provider(volunteer).claim(drain_tasks(amqp_url)[0].task_id)
    urls = [grant.model_url, grant.data.url, grant.labels.url]
    queries = [urlsplit(url).query for url in urls]
    assert all(queries), "presigned URLs carry their signature in the query"

    agent = volunteer_agent(api_server, make_user, tmp_path)
    agent._trainer = LoadOnly()  # type: ignore[assignment]
    work = tmp_path / "work"
    work.mkdir()
    try:
        job = agent._prepare(grant, work)
        # Even a line that names a URL shows it without its query.
        logging.getLogger("provider_agent.agent").info("fetched %s", grant.model_url)
    finally:
        agent._files.close()

    # The fetch really happened, through the presigned URLs.
    start, stop = shard_rows(grant.shard, len(started.data.x), 3)
    rows = started.data.x[start:stop]
    assert np.array_equal(np.load(job.x_path, allow_pickle=False), rows)
    logged = provider_logging.getvalue()
    assert "fetched http" in logged and "?<redacted>" in logged
    for query in queries:
        assert query not in logged
    assert "sig=" not in logged and "X-Amz-Signature" not in logged


def test_the_training_process_started_after_a_task_is_not_logged_as_that_task(
    start_project: Callable[..., Started],
    api_server,
    make_user,
    amqp_url: str,
    tmp_path: Path,
    provider_logging: io.StringIO,
) -> None:
    start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    agent = volunteer_agent(api_server, make_user, tmp_path)
    agent._trainer = CancelledThenRestarted()  # type: ignore[assignment]
    agent._client.login(agent.config.username, agent.config.password)
    delivery = Delivery(task.model_dump_json().encode(), TrainTask.type_name, False, 0)
    try:
        outcome = agent._on_task(delivery, NoBroker())  # type: ignore[arg-type]
    finally:
        agent._files.close()
        agent._client.close()

    assert outcome == Outcome.ACK, "the cancelled task was given back"
    logged = provider_logging.getvalue().splitlines()
    assert any(f"task={task.task_id}" in line for line in logged), "the task's own lines"
    started = [line for line in logged if f": {STARTING_TENSORFLOW}" in line]
    assert started, "the new training process was logged"
    assert all("task=" not in line for line in started), started
