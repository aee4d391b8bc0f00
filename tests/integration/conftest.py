"""Fixtures for integration tests: shared API servers, users, small projects, broker sessions.

Everything runs against the real services of ``tests/conftest.py`` (Postgres, RabbitMQ, moto's
S3 server, the API under uvicorn). ``shared_api_server`` serves one module's tests from one
database, vhost and blob directory to save start-up time; those tests isolate themselves by
unique user names, project ids and blob keys.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pika
import pytest
from pika.exceptions import AMQPError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daig import topology
from daig.blobstore import BlobStore, open_blob_store
from daig.broker import BrokerSession, connect, queue_depths
from daig.client import DaigClient
from daig.db.session import make_engine, make_sessionmaker
from daig.hyperparams import Hyperparameters
from daig.messages import TrainTask, decode
from daig.process import TRANSIENT_ERRORS
from daig.settings import Settings
from services.aggregator.consumer import BatchOptions, run_batches
from services.aggregator.handlers import Aggregator
from services.scheduler.handlers import Scheduler
from tests.conftest import AMQP_HOST, PG_ADMIN_URL, ApiServer
from tests.helpers.aggregation import DirectAggregator

PASSWORD = "correct-horse-battery"


# --- a module-scoped server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The real API on its own database, vhost and blob directory, for one test module."""
    with module_api_server(tmp_path_factory) as server:
        yield server


@contextmanager
def module_api_server(
    tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> Iterator[ApiServer]:
    """An API server on a fresh database, vhost and blob directory; ``overrides`` settings."""
    from daig.db.migrate import drop_database, upgrade

    name = f"daig_test_{uuid.uuid4().hex[:12]}"
    database_url = f"{PG_ADMIN_URL}/{name}"
    upgrade(database_url)
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    settings = Settings(
        database_url=database_url,
        amqp_url=f"{AMQP_HOST}/{name}",
        blob_url=(tmp_path_factory.mktemp("shared-blobs") / "blobs").as_uri(),
        public_api_url="http://127.0.0.1:1",
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        signups_per_ip=10_000,  # a module's users all sign up from 127.0.0.1
    ).model_copy(update=overrides)
    try:
        with ApiServer(settings) as server:
            yield server
    finally:
        _rabbitmqctl("delete_vhost", name)
        drop_database(database_url)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


# --- users ---------------------------------------------------------------------------------------
def new_user(server_url: str, prefix: str = "user") -> DaigClient:
    """A logged-in client of a freshly signed-up user with a unique name."""
    client = DaigClient(server_url)
    username = f"{prefix}-{uuid.uuid4().hex[:10]}"
    client.signup(username, PASSWORD)
    client.login(username, PASSWORD)
    return client


@pytest.fixture
def make_user() -> Iterator[Callable[..., DaigClient]]:
    """``make_user(server_url)`` signs up and logs in a new user; clients close afterwards."""
    clients: list[DaigClient] = []

    def make(server_url: str, prefix: str = "user") -> DaigClient:
        client = new_user(server_url, prefix)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --- small training data ------------------------------------------------------------------------
@dataclass(frozen=True)
class SmallData:
    data: Path
    labels: Path
    x: np.ndarray
    y: np.ndarray


def write_small_data(directory: Path, rows: int, features: int = 64, seed: int = 0) -> SmallData:
    """``rows`` rows of random float32 features and int64 labels, as ``.npy`` files."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, features), dtype=np.float32)
    y = rng.integers(0, 10, size=rows, dtype=np.int64)
    directory.mkdir(parents=True, exist_ok=True)
    data, labels = directory / f"x{rows}.npy", directory / f"y{rows}.npy"
    np.save(data, x, allow_pickle=False)
    np.save(labels, y, allow_pickle=False)
    return SmallData(data, labels, x, y)


@pytest.fixture
def small_data(tmp_path: Path) -> SmallData:
    """Ten rows for the digits MLP (64 features): shards of 3, 3 and 4 rows with T=3."""
    return write_small_data(tmp_path / "small", rows=10)


def create_started_project(
    client: DaigClient, model: Path, data: SmallData, params: Hyperparameters
) -> dict:
    project = client.create_project(f"p-{uuid.uuid4().hex[:6]}", params)
    client.upload_file(project["id"], "model", model)
    client.upload_file(project["id"], "data", data.data)
    client.upload_file(project["id"], "labels", data.labels)
    return client.start(project["id"])


# --- database, broker, services -----------------------------------------------------------------
@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def broker_session(amqp_url: str) -> Iterator[BrokerSession]:
    """A confirming broker session on the test's vhost, with the topology declared."""
    connection = connect(amqp_url)
    channel = connection.channel()
    topology.declare(channel)
    channel.confirm_delivery()
    yield BrokerSession(connection, channel)
    with contextlib.suppress(AMQPError):  # a long test may have outlived its heartbeats
        if connection.is_open:
            connection.close()


def ready_count(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue`` (passive declare)."""
    connection = connect(amqp_url, heartbeat=0)
    try:
        frame = connection.channel().queue_declare(queue, passive=True)
        return int(frame.method.message_count)
    finally:
        connection.close()


def drain(amqp_url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take (and ack) every message ready in ``queue``."""
    connection = connect(amqp_url, heartbeat=0)
    try:
        channel = connection.channel()
        messages = []
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return messages
            channel.basic_ack(method.delivery_tag)
            messages.append((props, body))
    finally:
        connection.close()


@contextmanager
def consuming_results(
    amqp_url: str, aggregator: Aggregator, on_connect: Callable[..., None] | None = None
) -> Iterator[None]:
    """The aggregator consuming every result partition in a thread, as in production."""
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_batches,
        args=(amqp_url, aggregator.partitions, aggregator.on_batch, stop),
        kwargs={
            "options": BatchOptions(idle_seconds=0.2, transient=TRANSIENT_ERRORS),
            "idle": aggregator.idle,
            "on_connect": on_connect,
        },
        daemon=True,
    )
    consumer.start()
    try:
        yield
    finally:
        stop.set()
        consumer.join(10)


def results_ready(amqp_url: str) -> int:
    """Result messages waiting in every partition queue."""
    return queue_depths(amqp_url)["daig.results"]


def drain_tasks(amqp_url: str) -> list[TrainTask]:
    return [decode(TrainTask, body, props.type) for props, body in drain(amqp_url, "daig.tasks")]


@pytest.fixture
def scheduler(sessions: sessionmaker[Session], settings: Settings) -> Scheduler:
    return Scheduler(sessions, settings)


@pytest.fixture
def server_blobs(api_server: ApiServer) -> BlobStore:
    """The blob store the running API uses (same directory and signing secret)."""
    return open_blob_store(api_server.settings)


@pytest.fixture
def aggregator(
    sessions: sessionmaker[Session], server_blobs: BlobStore, api_server: ApiServer
) -> DirectAggregator:
    """The real aggregator, handed results by the test itself (see ``DirectAggregator``)."""
    return DirectAggregator(sessions, server_blobs, api_server.settings)


# --- a started project with the scheduler's round 0 in place -------------------------------------
@dataclass
class Started:
    owner: DaigClient
    project: dict
    id: uuid.UUID
    data: SmallData


@pytest.fixture
def start_project(
    api_server: ApiServer,
    make_user: Callable[..., DaigClient],
    digits_files,
    small_data: SmallData,
    scheduler: Scheduler,
    broker_session: BrokerSession,
) -> Callable[..., Started]:
    """``start_project(params)``: upload the digits MLP and ``small_data``, start, reconcile."""

    def start(params: Hyperparameters, *, reconcile: bool = True) -> Started:
        owner = make_user(api_server.url, "requestor")
        project = create_started_project(owner, digits_files.model, small_data, params)
        project_id = uuid.UUID(project["id"])
        if reconcile:
            scheduler.reconcile(project_id, broker_session)
        return Started(owner, project, project_id, small_data)

    return start
