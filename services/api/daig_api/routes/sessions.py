"""Long-lived logins: renew an access token with a refresh token, and revoke one (logout).

Both accept an OAuth2-style form or JSON. A refused refresh token answers 401 with
``refresh_invalid``, ``refresh_expired`` or ``refresh_revoked``: the client must log in again.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from daig.contract.http import LogoutRequest, RefreshRequest, Token
from daig_api import refresh_tokens
from daig_api.deps import SessionDep, SettingsDep
from daig_api.errors import ApiError
from daig_api.refresh_tokens import RefreshRefused, Refused
from daig_api.security import create_token

router = APIRouter(prefix="/v1", tags=["auth"])
B = TypeVar("B", bound=BaseModel)

_REFUSALS = {
    Refused.UNKNOWN: "this saved login is not valid",
    Refused.EXPIRED: "this saved login has expired (unused for too long)",
    Refused.REVOKED: "this saved login was revoked (logged out)",
}


def _documented(shape: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads ``shape`` as a form or as JSON."""
    schema = shape.model_json_schema()
    kinds = ("application/x-www-form-urlencoded", "application/json")
    return {"requestBody": {"content": {k: {"schema": schema} for k in kinds}, "required": True}}


async def _body(request: Request, shape: type[B]) -> B:
    """The request's form or JSON body as ``shape``; 422 with the usual message otherwise."""
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            raw: Any = await request.json()
        else:
            raw = dict((await request.form()).items())
        return shape.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    except (ValueError, UnicodeDecodeError, AssertionError) as exc:
        message = f"the body is neither a form nor JSON ({exc})"
        raise ApiError(422, message, "invalid_request") from exc


async def refresh_body(request: Request) -> RefreshRequest:
    return await _body(request, RefreshRequest)


async def logout_body(request: Request) -> LogoutRequest:
    return await _body(request, LogoutRequest)


@router.post(
    "/auth/refresh",
    response_model_exclude_none=True,
    openapi_extra=_documented(RefreshRequest),
    responses={401: {"description": "The refresh token is unknown, expired or revoked"}},
)
def refresh(
    body: Annotated[RefreshRequest, Depends(refresh_body)],
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """Exchange a refresh token for a new access token (the refresh token's expiry slides)."""
    try:
        user_id = refresh_tokens.use(
            session=session, token=body.refresh_token, days=settings.refresh_token_days
        )
    except RefreshRefused as exc:
        session.rollback()
        message = f"{_REFUSALS[exc.why]}; log in again"
        raise ApiError(401, message, exc.why.value) from exc
    session.commit()
    return Token(
        access_token=create_token(
            user_id=user_id, secret=settings.secret_key, ttl_seconds=settings.token_ttl_seconds
        ),
        expires_in=settings.token_ttl_seconds,
    )


@router.post("/auth/logout", status_code=204, openapi_extra=_documented(LogoutRequest))
def logout(body: Annotated[LogoutRequest, Depends(logout_body)], session: SessionDep) -> None:
    """Revoke a refresh token (again, or an unknown one: nothing happens)."""
    refresh_tokens.revoke(session=session, token=body.refresh_token)
    session.commit()
