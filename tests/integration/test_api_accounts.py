"""The HTTP API over real HTTP: accounts and tokens, who may see which project, request
validation with readable messages, health and the OpenAPI pages.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from daig.client import ClientError, DaigClient
from daig.hyperparams import Hyperparameters
from tests.helpers.accounts import PASSWORD
from tests.helpers.services import ApiServer


@pytest.fixture
def url(shared_api_server) -> str:
    return str(shared_api_server.url)


def test_signup_then_token_then_me(url: str) -> None:
    username = f"bob-{uuid.uuid4().hex[:8]}"
    with DaigClient(url) as client:
        created = client.signup(username, PASSWORD)
        assert created.username == username
        client.login(username, PASSWORD)
        assert client.me() == created


def test_duplicate_username_is_409(url: str) -> None:
    username = f"carol-{uuid.uuid4().hex[:8]}"
    with DaigClient(url) as client:
        client.signup(username, PASSWORD)
        with pytest.raises(ClientError) as error:
            client.signup(username, "another-password")
    assert error.value.status == 409
    assert username in str(error.value) and "taken" in str(error.value)


@pytest.mark.parametrize(
    ("username", "password", "words"),
    [
        ("dave-short-pw", "short", ["password", "at least 8"]),
        ("x", "long-enough-password", ["username", "at least 3"]),
        ("has space", "long-enough-password", ["username", "pattern"]),
    ],
)
def test_invalid_signup_is_422_with_a_readable_detail(
    url: str, username: str, password: str, words: list[str]
) -> None:
    response = httpx.post(
        f"{url}/v1/auth/signup", json={"username": username, "password": password}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail


def test_wrong_password_or_unknown_user_is_401(url: str, make_user) -> None:
    client = make_user(url)
    username = client.me().username
    for name, password in ((username, "wrong-password"), ("nobody-" + uuid.uuid4().hex, PASSWORD)):
        with pytest.raises(ClientError) as error:
            DaigClient(url).login(name, password)
        assert error.value.status == 401
        assert "wrong username or password" in str(error.value)


def test_missing_or_forged_token_is_401(url: str) -> None:
    assert httpx.get(f"{url}/v1/projects").status_code == 401
    forged = httpx.get(f"{url}/v1/projects", headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401
    assert "log in again" in forged.json()["detail"]


def test_a_token_stops_working_when_it_expires(settings) -> None:
    with (
        ApiServer(settings.model_copy(update={"token_ttl_seconds": 1})) as server,
        DaigClient(server.url) as client,
    ):
        client.signup("erin", PASSWORD)
        client.login("erin", PASSWORD)
        assert client.me().username == "erin"
        time.sleep(2.1)
        with pytest.raises(ClientError) as error:
            client.me()
    assert error.value.status == 401 and "expired" in str(error.value)


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _forgeries(secret: str, user_id: int, other_id: int) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + 3600}
    genuine = jwt.encode(claims, secret, "HS256")
    header, _, signature = genuine.split(".")
    return {
        "foreign secret": jwt.encode(claims, "another-secret-that-is-long-enough-too", "HS256"),
        "unsigned (alg none)": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "payload swapped": f"{header}.{_b64(claims | {'sub': str(other_id)})}.{signature}",
        "no expiry": jwt.encode({"sub": str(user_id)}, secret, "HS256"),
        "expired": jwt.encode(claims | {"exp": now - 10}, secret, "HS256"),
        "no such user": jwt.encode(claims | {"sub": "999999999"}, secret, "HS256"),
        "subject not an id": jwt.encode(claims | {"sub": "admin"}, secret, "HS256"),
        "other algorithm": jwt.encode(claims, secret, "HS512"),
    }


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 forgery
def test_forged_tokens_are_401_and_a_genuine_one_works(shared_api_server, make_user) -> None:
    url, secret = shared_api_server.url, shared_api_server.settings.secret_key
    victim, other = make_user(url, "victim"), make_user(url, "other")
    victim_id, other_id = victim.me().id, other.me().id
    for name, token in _forgeries(secret, victim_id, other_id).items():
        response = httpx.get(f"{url}/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert "log in again" in response.json()["detail"], name
    now = int(time.time())
    genuine = jwt.encode({"sub": str(victim_id), "exp": now + 60}, secret, "HS256")
    response = httpx.get(f"{url}/v1/users/me", headers={"Authorization": f"Bearer {genuine}"})
    assert response.status_code == 200 and response.json()["id"] == victim_id


def test_every_project_endpoint_hides_other_users_projects(
    url: str, make_user, digits_files, tmp_path: Path
) -> None:
    owner, stranger = make_user(url, "owner"), make_user(url, "stranger")
    project = owner.create_project("private", Hyperparameters(total_tasks=4, task_size=2))
    owner.upload_file(project.id, "model", digits_files.model)
    pid = project.id

    calls: dict[str, Callable[[], object]] = {
        "status": lambda: stranger.project(pid),
        "rounds": lambda: stranger.rounds(pid),
        "files": lambda: stranger.files(pid),
        "upload": lambda: stranger.upload_file(pid, "data", digits_files.data),
        "start": lambda: stranger.start(pid),
        "model": lambda: stranger.download_model(pid, tmp_path / "stolen.h5"),
        "delete": lambda: stranger.delete_project(pid),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.status == 404, name
        assert error.value.reason == "not_found", name
    assert not (tmp_path / "stolen.h5").exists()
    assert all(p.id != pid for p in stranger.projects())
    # ...and the owner's project is untouched by the attempts.
    mine = owner.project(pid)
    assert mine.state == "created"
    assert [f.kind for f in mine.files] == ["model"]
    # A project that does not exist at all looks the same.
    with pytest.raises(ClientError) as error:
        stranger.project(uuid.uuid4())
    assert error.value.status == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1001}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"validation_split": 0.95}, "validation_split"),
        ({"validation_split": -0.1}, "validation_split"),
        ({"total_tasks": 0}, "total_tasks"),
        ({"task_size": 0}, "task_size"),
        ({"max_contributors": 0}, "max_contributors"),
        ({"passes": 0}, "passes"),
        ({"total_tasks": 3, "task_size": 4}, "task_size"),
        ({"epochs": "many"}, "epochs"),
        ({"learning_rate": 0.1}, "learning_rate"),
    ],
)
def test_out_of_range_hyperparameters_are_422_naming_the_field(
    url: str, make_user, changes: dict, field: str
) -> None:
    client = make_user(url)
    body = {"name": "bad"} | changes
    response = client._http.post(
        "/v1/projects", json=body, headers={"Authorization": f"Bearer {client.token}"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and field in detail, detail
    assert client.projects() == []


def test_defaults_fill_in_and_max_contributors_defaults_to_k(url: str, make_user) -> None:
    client = make_user(url)
    project = client.create_project("defaults", Hyperparameters(total_tasks=6, task_size=3))
    assert project.hyperparameters.model_dump() == {
        "epochs": 5,
        "batch_size": 32,
        "validation_split": 0.0,
        "total_tasks": 6,
        "task_size": 3,
        "max_contributors": 3,
        "passes": 1,
        "aggregation": "mean",
        "trim_fraction": 0.2,
        "clip_factor": 1.0,
        "max_norm_ratio": 10.0,
        "delta_codec": "fp32",
        "outer_optimizer": "average",
        "outer_learning_rate": 1.0,
        "outer_momentum": 0.9,
        "share": 1.0,
        "verify_fraction": 0.1,
        "verify_tolerance": 0.05,
    }
    assert project.state == "created" and project.round == 0


def test_healthz_reports_database_broker_and_queue_depths(url: str) -> None:
    response = httpx.get(f"{url}/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True}
    assert body["broker"]["ok"] is True
    assert set(body["broker"]["queues"]) == {
        "daig.tasks",
        "daig.results",
        "daig.scheduler.events",
        "daig.dead",
    }
    assert all(isinstance(depth, int) for depth in body["broker"]["queues"].values())


def test_docs_and_openapi_are_served(url: str) -> None:
    docs = httpx.get(f"{url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(f"{url}/openapi.json").json()
    for path in (
        "/v1/auth/signup",
        "/v1/auth/token",
        "/v1/projects",
        "/v1/projects/{project_id}/start",
        "/v1/projects/{project_id}/files/{kind}",
        "/v1/projects/{project_id}/model",
        "/v1/tasks/{task_id}/claim",
        "/v1/claims/{claim_id}/release",
        "/healthz",
    ):
        assert path in spec["paths"], path
    hints = spec["components"]["schemas"]["ProjectCreate"]["properties"]
    assert "K:" in hints["task_size"]["description"]
