"""FastAPI dependencies as ``Annotated`` aliases: settings, database session, current user..."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from daig.blobstore import BlobStore
from daig.broker import Publisher
from daig.contract.http import INVALID_TOKEN
from daig.db.models import User
from daig.dispatch import DispatchPolicy
from daig.settings import Settings
from daig_api.catalog import ProjectCatalog
from daig_api.errors import ApiError
from daig_api.grants import InlineWeights, SharedUrls
from daig_api.ratelimit import RateLimiter
from daig_api.relay import BackgroundRelay
from daig_api.security import user_id_from_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token")
# Dependencies that only read app.state are ``async def``: FastAPI would run a plain ``def``
# in a worker thread, a thread hop per dependency per request.


@dataclass(frozen=True)
class ClaimContext:
    catalog: ProjectCatalog
    inline_weights: InlineWeights
    urls: SharedUrls
    policy: DispatchPolicy
    relay: BackgroundRelay


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


async def get_blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


async def get_rate_limiter(request: Request) -> RateLimiter:
    return RateLimiter(request.app.state.sessionmaker)


async def get_client_ip(request: Request) -> str:
    """The caller's address (uvicorn takes it from X-Forwarded-For of trusted proxies)."""
    return request.client.host if request.client else "unknown"


async def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


def claim_context(state: Any) -> ClaimContext:
    """What claims share across requests: project facts, inline weights, the relay."""
    return ClaimContext(
        state.catalog, state.inline_weights, state.shared_urls, state.dispatch_policy, state.relay
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
TokenDep = Annotated[str, Depends(oauth2_scheme)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
ClientIpDep = Annotated[str, Depends(get_client_ip)]


def get_current_user(session: SessionDep, token: TokenDep, settings: SettingsDep) -> User:
    user_id = user_id_from_token(token, settings.secret_key)
    user = session.get(User, user_id) if user_id is not None else None
    # End the transaction so its connection goes back to the pool now: the route runs in
    # another threadpool hop, and requests holding connections while waiting for a thread
    # (with every thread waiting for a connection) deadlocked until the pool's 30 s timeout.
    session.commit()
    if user is None:
        raise _invalid_token()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def _invalid_token() -> HTTPException:
    # The reason tells a client holding a refresh token to renew its access token.
    return ApiError(
        status.HTTP_401_UNAUTHORIZED,
        "your token is invalid or expired; log in again",
        INVALID_TOKEN,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_token_user_id(token: TokenDep, request: Request) -> int:
    """The user a valid token names, checked without the database (for the hot routes)."""
    user_id = user_id_from_token(token, request.app.state.settings.secret_key)
    if user_id is None:
        raise _invalid_token()
    return user_id


TokenUserId = Annotated[int, Depends(get_token_user_id)]
