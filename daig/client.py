"""The HTTP client of the DAIG API, used by the CLI, the provider agent and the GUI.

Every answer is parsed into its model of the wire contract (``daig.contract.http``), the very
classes the server declares, ignoring fields this version does not know. Every failure becomes
a ``ClientError`` with a sentence a person can act on: the server's own ``detail`` for API
errors, or what could not be reached for connection problems.

A client given a refresh token (``login(..., remember=True)`` or ``refresh_token=``) renews its
access token by itself: shortly before it expires when its lifetime is known, and once on a
401 that says the access token is invalid or expired, after which the call is sent again.
Only a refused refresh token (revoked, expired: "log in again") reaches the caller.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from daig.contract.http import (
    INVALID_TOKEN,
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
OFFLINE_ACCESS = "offline_access"  # the login scope that asks for a refresh token
RENEW_AHEAD_SECONDS = 60.0  # renew an access token this long (at most half its life) early
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
    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.refresh_token = refresh_token
        self._expires_at: float | None = None  # time.monotonic() when ``token`` expires
        self._renew_lock = threading.Lock()
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
        """Send a request (renewing the access token if need be); raise ``ClientError``."""
        if not _replayable(kwargs.get("content")):  # a stream is sent once: renew before
            self._renew_if_due()
            return self._send(method, path, **kwargs)
        return self._renewing(lambda: self._send(method, path, **kwargs))

    def _send(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method, path, headers=self._headers() | (headers or {}), **kwargs
            )
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

    # --- access tokens ----------------------------------------------------------------------
    def _renewing(self, send: Callable[[], A]) -> A:
        """``send()``, sent once more with a renewed access token if it was refused as invalid
        or expired and we hold a refresh token."""
        stale = self._renew_if_due()
        try:
            return send()
        except ClientError as exc:
            if not self._renewable(exc):
                raise
        self._renew(stale)
        return send()

    def _renewable(self, exc: ClientError) -> bool:
        # No reason: no token sent (FastAPI's own 401), or a server older than the reason.
        expired = exc.status == 401 and exc.reason in (INVALID_TOKEN, None)
        return expired and bool(self.refresh_token)

    def _renew_if_due(self) -> str | None:
        """Renew the access token if it is about to expire; returns the token in use."""
        due = self._expires_at is not None and time.monotonic() > self._expires_at
        if self.refresh_token and due:
            self._renew(self.token)
        return self.token

    def _renew(self, stale: str | None) -> None:
        """Exchange the refresh token for a new access token, unless another thread already
        replaced ``stale``. A refused refresh token raises (reason ``refresh_*``)."""
        with self._renew_lock:
            if self.token != stale:
                return
            body = {"grant_type": "refresh_token", "refresh_token": self.refresh_token or ""}
            answer = self._parse(Token, self._send("POST", "/v1/auth/refresh", data=body))
            self._hold(answer)

    def _hold(self, answer: Token) -> None:
        self.token = answer.access_token
        ahead = min(RENEW_AHEAD_SECONDS, answer.expires_in / 2)
        self._expires_at = time.monotonic() + answer.expires_in - ahead

    # --- accounts ---------------------------------------------------------------------------
    def signup(self, username: str, password: str) -> UserOut:
        body = {"username": username, "password": password}
        return self.call(UserOut, "POST", "/v1/auth/signup", json=body)

    def login(
        self, username: str, password: str, *, remember: bool = False, label: str | None = None
    ) -> str:
        """Log in; returns the access token. ``remember`` also asks for a refresh token (kept
        in ``refresh_token``, to save for later sessions), named ``label`` on the server."""
        body = {"username": username, "password": password}
        if remember:
            body["scope"] = OFFLINE_ACCESS
            if label:
                body["label"] = label[:200]
        answer = self._parse(Token, self._send("POST", "/v1/auth/token", data=body))
        self._hold(answer)
        if remember:  # an older server gives none: the login lasts as long as its token
            self.refresh_token = answer.refresh_token
        return answer.access_token

    def logout(self) -> None:
        """Revoke the refresh token on the server (if any) and forget both tokens."""
        refresh, self.refresh_token, self.token = self.refresh_token, None, None
        if refresh:
            self._send("POST", "/v1/auth/logout", data={"refresh_token": refresh})

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
        return self._renewing(lambda: self._download_model(project_id, target, progress))

    def _download_model(
        self,
        project_id: str | uuid.UUID,
        target: Path,
        progress: Callable[[int, int | None], None] | None,
    ) -> DownloadedModel:
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


def _replayable(content: object) -> bool:
    """Whether a request body can be sent twice (a generator streams once)."""
    return content is None or isinstance(content, bytes | str)


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
