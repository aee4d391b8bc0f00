"""The HTTP client of the DAIG API, used by the CLI, the provider agent and the GUI.

Every answer is parsed into its model of the wire contract (``daig.contract.http``), the very
classes the server declares, ignoring fields this version does not know. Every failure becomes
a ``ClientError`` with a sentence a person can act on: the server's own ``detail`` for API
errors, or what could not be reached for connection problems.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from daig.contract.http import (
    BalanceOut,
    ClaimGrant,
    ContributorOut,
    EstimateOut,
    FileOut,
    Health,
    HistoryLineOut,
    Lease,
    ProjectCostOut,
    ProjectOut,
    ProviderConfig,
    ProviderResultOut,
    RoundOut,
    StandingOut,
    Token,
    UserOut,
    VolunteersOut,
    parse_answer,
)
from daig.hyperparams import Hyperparameters

CHUNK = 1024 * 1024
Progress = Callable[[int], None]  # called with the number of bytes just transferred
A = TypeVar("A")


class ClientError(Exception):
    """A request that did not succeed; ``str()`` is the human explanation."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After header


@dataclass(frozen=True)
class DownloadedModel:
    """What the server said of a downloaded model, besides its bytes."""

    weights_version: str  # "" when the project has no global weights yet


class DaigClient:
    def __init__(self, server: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.server, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DaigClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            headers = self._headers() | kwargs.pop("headers", {})
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the DAIG server at {self.server} ({exc})") from exc
        if response.status_code < 500 and not _daig_shaped(response):
            self._refuse_if_not_daig(response)  # a proxy's 5xx says nothing of what is behind
        raise_for_status(response)
        return response

    def _refuse_if_not_daig(self, answer: httpx.Response) -> None:
        """Raise "URL is not a DAIG server" when ``/healthz`` does not answer as DAIG's does.

        Called for answers no DAIG route gives (an error without DAIG's ``reason``, a success
        that is not JSON), so a wrong URL is named as such instead of "Method Not Allowed".
        """
        try:
            health = self._http.get("/healthz", timeout=10.0)
            parse_answer(Health, health.json())
            return  # a DAIG server: the original answer stands
        except httpx.TransportError as exc:
            seen = f"it did not answer ({exc})"
        except (ValueError, ValidationError):
            kind = health.headers.get("content-type", "no content type").split(";")[0]
            seen = f"it answered HTTP {health.status_code} {kind}"
        raise ClientError(
            f"{self.server} is not a DAIG server (no DAIG API answered at /healthz: {seen}; "
            f"{answer.request.method} {answer.request.url.path} got HTTP "
            f"{answer.status_code}); check the server address",
            status=answer.status_code,
            reason="not_daig",
        )

    def call(self, shape: type[A], method: str, path: str, **kwargs: Any) -> A:
        """Send a request and parse its answer as ``shape`` (a contract model or a list of one)."""
        return self._parse(shape, self.request(method, path, **kwargs))

    def _parse(self, shape: type[A], response: httpx.Response) -> A:
        try:
            return parse_answer(shape, response.json() if response.content else None)
        except (ValidationError, ValueError) as exc:  # ValueError: not JSON at all
            # Not an outage: asking again gets the same answer, so it carries its status.
            raise ClientError(
                f"the DAIG server at {self.server} sent an answer this client cannot read "
                f"(is it another version?): {exc}",
                status=response.status_code,
                reason="unreadable_answer",
            ) from exc

    # --- accounts ---------------------------------------------------------------------------
    def signup(self, username: str, password: str) -> UserOut:
        body = {"username": username, "password": password}
        return self.call(UserOut, "POST", "/v1/auth/signup", json=body)

    def login(self, username: str, password: str) -> str:
        body = {"username": username, "password": password}
        self.token = self.call(Token, "POST", "/v1/auth/token", data=body).access_token
        return self.token

    def me(self) -> UserOut:
        return self.call(UserOut, "GET", "/v1/users/me")

    def standing(self) -> StandingOut:
        """Your verified record as a volunteer (and quarantine, if any)."""
        return self.call(StandingOut, "GET", "/v1/users/me/standing")

    def health(self) -> Health:
        """The server's ``/healthz`` report, degraded (HTTP 503) or not."""
        try:
            response = self._http.get("/healthz")
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the DAIG server at {self.server} ({exc})") from exc
        status = response.status_code
        if status < 500 and (status != 200 or not _daig_shaped(response)):
            self._refuse_if_not_daig(response)
        if status not in (200, 503):
            raise_for_status(response)
        return self._parse(Health, response)

    # --- projects ---------------------------------------------------------------------------
    def create_project(self, name: str, params: Hyperparameters) -> ProjectOut:
        body = params.model_dump() | {"name": name}
        return self.call(ProjectOut, "POST", "/v1/projects", json=body)

    def projects(self) -> list[ProjectOut]:
        return self.call(list[ProjectOut], "GET", "/v1/projects")

    def project(self, project_id: str | uuid.UUID) -> ProjectOut:
        return self.call(ProjectOut, "GET", f"/v1/projects/{project_id}")

    def rounds(self, project_id: str | uuid.UUID) -> list[RoundOut]:
        return self.call(list[RoundOut], "GET", f"/v1/projects/{project_id}/rounds")

    def pause(self, project_id: str | uuid.UUID) -> ProjectOut:
        return self.call(ProjectOut, "POST", f"/v1/projects/{project_id}/pause")

    def resume(self, project_id: str | uuid.UUID) -> ProjectOut:
        return self.call(ProjectOut, "POST", f"/v1/projects/{project_id}/resume")

    def cancel(self, project_id: str | uuid.UUID) -> ProjectOut:
        return self.call(ProjectOut, "POST", f"/v1/projects/{project_id}/cancel")

    def estimate(self, project_id: str | uuid.UUID) -> EstimateOut:
        """Its cost and how long it would train with the volunteers online now."""
        return self.call(EstimateOut, "GET", f"/v1/projects/{project_id}/estimate")

    def volunteers(self) -> VolunteersOut:
        return self.call(VolunteersOut, "GET", "/v1/volunteers")

    def files(self, project_id: str | uuid.UUID) -> list[FileOut]:
        return self.call(list[FileOut], "GET", f"/v1/projects/{project_id}/files")

    def delete_project(self, project_id: str | uuid.UUID) -> None:
        self.request("DELETE", f"/v1/projects/{project_id}")

    def start(self, project_id: str | uuid.UUID) -> ProjectOut:
        return self.call(ProjectOut, "POST", f"/v1/projects/{project_id}/start")

    def upload_file(
        self, project_id: str | uuid.UUID, kind: str, path: Path, progress: Progress | None = None
    ) -> FileOut:
        """Stream ``path`` as the project's ``kind`` file (model, data or labels)."""
        size = path.stat().st_size
        return self.call(
            FileOut,
            "PUT",
            f"/v1/projects/{project_id}/files/{kind}",
            params={"filename": path.name},
            content=_read_chunks(path, progress),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            timeout=None,
        )

    def download_model(
        self,
        project_id: str | uuid.UUID,
        target: Path,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> DownloadedModel:
        """Save the current model to ``target``."""
        try:
            with self._http.stream(
                "GET", f"/v1/projects/{project_id}/model", headers=self._headers(), timeout=None
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_status(response)
                total = int(response.headers.get("content-length", 0)) or None
                temp = target.with_name(f".{target.name}.part")
                with open(temp, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        if progress:
                            progress(len(chunk), total)
                temp.replace(target)
                version = response.headers.get("x-daig-weights-version", "")
                return DownloadedModel(weights_version=version)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the DAIG server at {self.server} ({exc})") from exc

    # --- providers --------------------------------------------------------------------------
    def provider_config(self) -> ProviderConfig:
        return self.call(ProviderConfig, "GET", "/v1/provider/config")

    def presence(self, agent_id: str) -> None:
        """Say this agent is waiting for tasks (it counts as online for a while)."""
        self.request("POST", "/v1/provider/presence", json={"agent_id": agent_id}, timeout=5.0)

    def claim(self, task_id: str | uuid.UUID, agent_id: str) -> ClaimGrant:
        body = {"agent_id": agent_id}
        return self.call(ClaimGrant, "POST", f"/v1/tasks/{task_id}/claim", json=body)

    def heartbeat(self, claim_id: str | uuid.UUID) -> Lease:
        return self.call(Lease, "POST", f"/v1/claims/{claim_id}/heartbeat")

    def release(self, claim_id: str | uuid.UUID) -> None:
        self.request("POST", f"/v1/claims/{claim_id}/release")

    def provider_results(
        self, since: datetime | None = None, limit: int = 50
    ) -> list[ProviderResultOut]:
        """Your own recent results as a volunteer (accepted, rejected with why...), newest first."""
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since.isoformat()
        return self.call(list[ProviderResultOut], "GET", "/v1/provider/results", params=params)

    # --- credits ----------------------------------------------------------------------------
    def credits(self) -> BalanceOut:
        """Balance, granted, earned, spent, committed and available credits."""
        return self.call(BalanceOut, "GET", "/v1/credits")

    def credit_history(self, limit: int = 100) -> list[HistoryLineOut]:
        path = "/v1/credits/history"
        return self.call(list[HistoryLineOut], "GET", path, params={"limit": limit})

    def project_cost(self, project_id: str | uuid.UUID) -> ProjectCostOut:
        return self.call(ProjectCostOut, "GET", f"/v1/projects/{project_id}/cost")

    def leaderboard(
        self, project_id: str | uuid.UUID | None = None, limit: int = 20
    ) -> list[ContributorOut]:
        path = f"/v1/projects/{project_id}/leaderboard" if project_id else "/v1/leaderboard"
        return self.call(list[ContributorOut], "GET", path, params={"limit": limit})


def _daig_shaped(response: httpx.Response) -> bool:
    """Whether DAIG could have sent this: its errors are JSON with a ``reason``, its answers
    JSON (or empty, or a model file). Other servers' pages and errors are not."""
    kind = response.headers.get("content-type", "")
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and "reason" in body
    return not response.content or "json" in kind or "hdf5" in kind


def raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        detail, reason = str(body.get("detail")), body.get("reason")
    except ValueError:
        detail, reason = response.text[:300] or response.reason_phrase, None
    raise ClientError(
        detail,
        status=response.status_code,
        reason=reason,
        retry_after=_seconds(response.headers.get("Retry-After")),
    )


def _seconds(header: str | None) -> float | None:
    """Retry-After in seconds (the API sends seconds; an HTTP date is not expected)."""
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def _read_chunks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            if progress:
                progress(len(chunk))
            yield chunk
