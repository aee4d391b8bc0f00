"""Fixtures for integration tests: shared API servers, users, small projects, broker sessions.

Everything runs against the real services of ``tests/conftest.py`` (Postgres, RabbitMQ, moto's
S3 server, the API under uvicorn). ``shared_api_server`` serves one module's tests from one
database, vhost and blob directory to save start-up time; those tests isolate themselves by
unique user names, project ids and blob keys. The helpers these fixtures use live in
``tests/helpers`` and are imported from there, never from this file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pika.exceptions import AMQPError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daig import topology
from daig.blobstore import BlobStore, open_blob_store
from daig.broker import BrokerSession, connect
from daig.client import DaigClient
from daig.db.session import make_engine, make_sessionmaker
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig_scheduler.handlers import Scheduler
from tests.helpers.accounts import new_user
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import (
    RoundsByHand,
    SmallData,
    Started,
    create_started_project,
    write_small_data,
)
from tests.helpers.results import Provider
from tests.helpers.services import ApiServer, module_api_server


# --- a module-scoped server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The real API on its own database, vhost and blob directory, for one test module."""
    with module_api_server(tmp_path_factory) as server:
        yield server


# --- users ---------------------------------------------------------------------------------------
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
@pytest.fixture
def small_data(tmp_path: Path) -> SmallData:
    """Ten rows for the digits MLP (64 features): shards of 3, 3 and 4 rows with T=3."""
    return write_small_data(tmp_path / "small", rows=10)


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
        project_id = project.id
        if reconcile:
            scheduler.reconcile(project_id, broker_session)
        return Started(owner, project, project_id, small_data)

    return start


# --- a volunteer driven by hand, and the model's weight schema -----------------------------------
@pytest.fixture
def provider(api_server: ApiServer, make_user: Callable[..., DaigClient]) -> Provider:
    """A volunteer claiming over HTTP and handing in results itself (see ``Provider``)."""
    return Provider(make_user(api_server.url, "provider"))


@pytest.fixture
def schema(digits_files) -> WeightSchema:
    """The weight schema of the digits MLP."""
    return WeightSchema.of(read_weights(digits_files.model))


@pytest.fixture
def rounds_by_hand(
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    schema: WeightSchema,
    amqp_url: str,
) -> RoundsByHand:
    """``provider`` hands in whole rounds to the real aggregator (see ``RoundsByHand``)."""
    return RoundsByHand(provider, aggregator, scheduler, broker_session, schema, amqp_url)
