"""Nobody reaches another user's projects or claims: every authenticated route that takes an id
answers a stranger 404 (exactly as for an id that does not exist) and changes nothing.

The routes are enumerated from the app's OpenAPI description, so a new authenticated route
with a path parameter fails ``test_every_authenticated_route_with_an_id_is_covered`` until
it is added to ``ATTEMPTS`` below (or to ``EXEMPT`` with the reason any user may call it).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daig.client import DaigClient
from daig.db.models import Claim, Project, ProjectFile, Round, Task
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig_api.main import create_app
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.services import ApiServer

# (method, path) -> how a stranger calls it with the id in place of the path's parameter.
Attempt = Callable[[DaigClient, str, Path], httpx.Response]


def _call(method: str, path: str, *, body: bool = False) -> Attempt:
    def attempt(client: DaigClient, an_id: str, files: Path) -> httpx.Response:
        url = path.format(project_id=an_id, claim_id=an_id, kind="data")
        content = (files / "x10.npy").read_bytes() if body else None
        headers = {"Authorization": f"Bearer {client.token}"}
        return client._http.request(method, url, headers=headers, content=content)

    return attempt


PROJECT_ROUTES: dict[tuple[str, str], Attempt] = {
    (method, path): _call(method, path, body=method == "PUT")
    for method, path in [
        ("GET", "/v1/projects/{project_id}"),
        ("DELETE", "/v1/projects/{project_id}"),
        ("POST", "/v1/projects/{project_id}/start"),
        ("POST", "/v1/projects/{project_id}/pause"),
        ("POST", "/v1/projects/{project_id}/resume"),
        ("POST", "/v1/projects/{project_id}/cancel"),
        ("GET", "/v1/projects/{project_id}/rounds"),
        ("GET", "/v1/projects/{project_id}/model"),
        ("GET", "/v1/projects/{project_id}/files"),
        ("PUT", "/v1/projects/{project_id}/files/{kind}"),
        ("GET", "/v1/projects/{project_id}/cost"),
        ("GET", "/v1/projects/{project_id}/estimate"),
        # The per-project leaderboard is for the owner and the project's contributors only.
        ("GET", "/v1/projects/{project_id}/leaderboard"),
    ]
}
CLAIM_ROUTES: dict[tuple[str, str], Attempt] = {
    ("POST", path): _call("POST", path)
    for path in ("/v1/claims/{claim_id}/heartbeat", "/v1/claims/{claim_id}/release")
}
ATTEMPTS = PROJECT_ROUTES | CLAIM_ROUTES
EXEMPT = {
    # Volunteers claim tasks of other people's projects: that is the point of DAIG. The claim
    # checks the project runs, the round and the contributor cap (tests/integration/test_claims).
    ("POST", "/v1/tasks/{task_id}/claim"): "any provider may claim any running project's task",
}


def test_every_authenticated_route_with_an_id_is_covered() -> None:
    # Building the app opens no connection (that happens at startup), so any settings do.
    spec = create_app(Settings(env="development")).openapi()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")  # needs a bearer token
        and any(p["in"] == "path" for p in operation.get("parameters", []))
    }
    assert routes == set(ATTEMPTS) | set(EXEMPT)


def _rows(session: Session, model: type, *conditions: Any) -> list[dict[str, Any]]:
    columns = [c.name for c in model.__table__.columns]  # type: ignore[attr-defined]
    rows = session.scalars(select(model).where(*conditions)).all()
    return sorted(({c: getattr(r, c) for c in columns} for r in rows), key=repr)


def _snapshot(sessions: sessionmaker[Session], blob_root: Path, ids: list[uuid.UUID]) -> dict:
    """Every row and blob byte that belongs to the projects (and their claims)."""
    with sessions() as session:
        rows = {
            model.__name__: _rows(session, model, column.in_(ids))
            for model, column in (
                (Project, Project.id),
                (ProjectFile, ProjectFile.project_id),
                (Round, Round.project_id),
                (Task, Task.project_id),
                (Claim, Claim.project_id),
            )
        }
    blobs = {
        str(path.relative_to(blob_root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(blob_root.rglob("*"))
        if path.is_file()
    }
    return rows | {"blobs": blobs}


@pytest.fixture
def setting(start_project, make_user, api_server: ApiServer, amqp_url: str, digits_files):
    """A running project with a provider's active claim, and an idle one ready to start."""
    started: Started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    provider = make_user(api_server.url, "provider")
    grant = provider.claim(drain_tasks(amqp_url)[0].task_id, "agent-1")
    idle = started.owner.create_project("idle", Hyperparameters(total_tasks=3, task_size=3))
    for kind in ("model", "data", "labels"):
        path = digits_files.model if kind == "model" else getattr(started.data, kind)
        started.owner.upload_file(idle.id, kind, path)
    return started, provider, grant, idle


def test_strangers_get_404_from_every_route_and_change_nothing(
    setting, make_user, api_server: ApiServer, sessions, tmp_path: Path
) -> None:
    started, provider, grant, idle = setting
    stranger = make_user(api_server.url, "stranger")
    files = started.data.data.parent
    blob_root = Path(urlparse(api_server.settings.blob_url).path)
    project_ids = [started.id, idle.id]
    before = _snapshot(sessions, blob_root, project_ids)

    targets = [(str(started.id), PROJECT_ROUTES), (str(idle.id), PROJECT_ROUTES)]
    targets.append((str(grant.claim_id), CLAIM_ROUTES))
    for an_id, routes in targets:
        for (method, path), attempt in routes.items():
            response = attempt(stranger, an_id, files)
            assert response.status_code == 404, (method, path, response.text)
            # Indistinguishable from an id that does not exist (no existence leak).
            unknown = str(uuid.uuid4())
            missing = attempt(stranger, unknown, files)
            assert missing.status_code == 404
            assert response.json()["reason"] == missing.json()["reason"], (method, path)
            assert response.json()["detail"].replace(an_id, "ID") == missing.json()[
                "detail"
            ].replace(unknown, "ID"), (method, path)

    assert _snapshot(sessions, blob_root, project_ids) == before
    # The owner and the provider carry on as if nothing happened.
    assert provider.heartbeat(grant.claim_id).lease_seconds > 0
    assert started.owner.start(idle.id).state == "queued"
    assert started.owner.pause(started.id).state == "paused"
