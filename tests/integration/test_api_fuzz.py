"""Fuzzing every operation of the OpenAPI description with schemathesis, against the real API.

The server runs under uvicorn on a real Postgres database and RabbitMQ vhost; requests carry a
real user's bearer token. Whatever schemathesis sends, valid or not, the answer must not be a
server error (5xx): bad input gets a clear 4xx. Each case is sent as generated and, where it
has an id or a signature, once more with real ones (a fresh project of the user and a real file
kind, a task and a claim of a running project, a valid signature for the fuzzed blob key), so
the fuzzed values reach the code behind the ownership and signature checks too.

The regression tests at the end pin what fuzzing found.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from sqlalchemy import select

from daig import topology
from daig.blobstore.signing import signature
from daig.broker import BrokerSession, connect
from daig.client import DaigClient
from daig.db.models import Task
from daig.db.session import make_engine, make_sessionmaker
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig_api.main import create_app
from daig_scheduler.handlers import Scheduler
from tests.helpers.accounts import new_user
from tests.helpers.projects import create_started_project, write_small_data
from tests.helpers.services import ApiServer, module_api_server

EXAMPLES = 25  # per operation and phase: every operation in well under a minute


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    # Fuzzed logins fail by the hundred from 127.0.0.1; let them all reach the login code.
    with module_api_server(
        tmp_path_factory, login_failures_per_ip=10_000, login_failures_per_user=10_000
    ) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_user(fuzz_server: ApiServer) -> Iterator[DaigClient]:
    client = new_user(fuzz_server.url, "fuzzer")
    yield client
    client.close()


@dataclass(frozen=True)
class RealIds:
    task_ids: list[str]
    claim_id: str


@pytest.fixture(scope="module")
def real_ids(
    fuzz_server: ApiServer,
    fuzz_user: DaigClient,
    digits_files,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealIds]:
    """A running project (round 0 opened by the real scheduler) and a claim on one task."""
    data = write_small_data(tmp_path_factory.mktemp("fuzz-data"), rows=10)
    params = Hyperparameters(total_tasks=3, task_size=3)
    project = create_started_project(fuzz_user, digits_files.model, data, params)
    settings = fuzz_server.settings
    engine = make_engine(settings.database_url)
    # Idle while the module fuzzes (minutes): no heartbeats, or the broker drops it.
    connection = connect(settings.amqp_url, heartbeat=0)
    try:
        channel = connection.channel()
        topology.declare(channel)
        channel.confirm_delivery()
        sessions = make_sessionmaker(engine)
        Scheduler(sessions, settings).reconcile(project.id, BrokerSession(connection, channel))
        with sessions() as session:
            tasks = [str(t) for t in session.scalars(select(Task.id).order_by(Task.slot))]
        grant = fuzz_user.claim(tasks[0], "fuzz-agent")
        yield RealIds(task_ids=tasks[1:], claim_id=str(grant.claim_id))
    finally:
        connection.close()
        engine.dispose()


# The description comes from the app itself (building it opens no connection), so the tests
# are collected per operation; the requests go to the module's real server.
schema = schemathesis.openapi.from_dict(create_app(Settings(env="development")).openapi())
schema.config.generation.update(max_examples=EXAMPLES, database="none")


def _with_real_ids(case: Case, server: ApiServer, user: DaigClient, ids: RealIds) -> bool:
    """Put real ids (or a valid signature) into ``case``; False if it has nothing to replace."""
    path = case.path_parameters or {}
    query = case.query if isinstance(case.query, dict) else {}
    if "project_id" in path:
        mine = user.create_project("fuzzed", Hyperparameters(total_tasks=3, task_size=3))
        path["project_id"] = str(mine.id)
        if "kind" in path:
            path["kind"] = ("model", "data", "labels")[len(str(case.body)) % 3]
    elif "task_id" in path:
        path["task_id"] = ids.task_ids[len(str(case.body)) % len(ids.task_ids)]
    elif "claim_id" in path:
        path["claim_id"] = ids.claim_id
    elif "key" in path and isinstance(path["key"], str):
        limit = query.get("max_bytes")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        expires = int(time.time()) + 600
        secret = server.settings.secret_key
        query.update(
            expires=expires,
            # schemathesis keeps path parameters percent-encoded; the server signs the decoded key
            sig=signature(secret, case.method.upper(), unquote(path["key"]), expires, limit),
        )
        case.query = query
    else:
        return False
    return True


@schema.parametrize()
def test_no_request_makes_the_server_fail(
    case: Case, fuzz_server: ApiServer, fuzz_user: DaigClient, real_ids: RealIds
) -> None:
    def call() -> None:
        case.call_and_validate(
            base_url=fuzz_server.url,
            headers={"Authorization": f"Bearer {fuzz_user.token}"},
            checks=[not_a_server_error],
            timeout=30,
        )

    call()
    if _with_real_ids(case, fuzz_server, fuzz_user, real_ids):
        call()


# --- what fuzzing found ------------------------------------------------------------------------
@pytest.fixture
def bearer(fuzz_user: DaigClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {fuzz_user.token}"}


def test_a_non_ascii_blob_signature_is_403(fuzz_server: ApiServer) -> None:
    for method in ("GET", "PUT"):
        response = httpx.request(
            method, f"{fuzz_server.url}/v1/blobs/a/b", params={"expires": 2**40, "sig": "é"}
        )
        assert response.status_code == 403, response.text
        assert response.json()["reason"] == "bad_signature"


@pytest.mark.parametrize("name", ["a\x00b", "tab\there", "new\nline"])
def test_control_characters_in_a_project_name_are_422(
    fuzz_server: ApiServer, bearer: dict[str, str], name: str
) -> None:
    response = httpx.post(f"{fuzz_server.url}/v1/projects", json={"name": name}, headers=bearer)
    assert response.status_code == 422, response.text
    assert "name: must not contain control characters" in response.json()["detail"]


def test_control_characters_in_an_agent_id_are_422(
    fuzz_server: ApiServer, bearer: dict[str, str], real_ids: RealIds
) -> None:
    url = f"{fuzz_server.url}/v1/tasks/{real_ids.task_ids[0]}/claim"
    response = httpx.post(url, json={"agent_id": "agent\x00"}, headers=bearer)
    assert response.status_code == 422, response.text
    assert "agent_id: must not contain control characters" in response.json()["detail"]


def test_a_nul_in_a_login_name_is_a_failed_login(fuzz_server: ApiServer) -> None:
    response = httpx.post(
        f"{fuzz_server.url}/v1/auth/token",
        data={"username": "a\x00b", "password": "whatever"},
        headers={"X-Forwarded-For": "192.0.2.7"},  # an address of its own, whatever ran before
    )
    assert response.status_code == 401, response.text


def test_control_characters_in_an_upload_filename_are_replaced(
    fuzz_user: DaigClient, digits_files, tmp_path: Path
) -> None:
    project = fuzz_user.create_project("names", Hyperparameters(total_tasks=3, task_size=3))
    weird = tmp_path / "model\x01.h5"
    weird.write_bytes(digits_files.model.read_bytes())
    stored = fuzz_user.upload_file(project.id, "model", weird)
    assert stored.filename == "model\ufffd.h5"
