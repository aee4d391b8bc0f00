"""Sign-up and OAuth2 password-flow tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.exc import IntegrityError

from daig.db.models import User
from services.api import crud
from services.api.api.deps import CurrentUser, SessionDep, SettingsDep
from services.api.core.security import create_token, hash_password, verify_password
from services.api.errors import ApiError
from services.api.schemas import SignupRequest, Token, UserOut

router = APIRouter(prefix="/v1", tags=["auth"])


@router.post("/auth/signup", status_code=201)
def signup(body: SignupRequest, session: SessionDep) -> UserOut:
    """Create an account."""
    if crud.get_user_by_name(session=session, username=body.username):
        raise ApiError(409, f"the username {body.username!r} is taken; choose another", "taken")
    user = User(username=body.username, password_hash=hash_password(body.password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        raise ApiError(409, f"the username {body.username!r} is taken", "taken") from exc
    return UserOut(id=user.id, username=user.username)


@router.post("/auth/token")
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """Exchange a username and password for a bearer token."""
    user = crud.get_user_by_name(session=session, username=form.username)
    if user is None or not verify_password(user.password_hash, form.password):
        raise ApiError(401, "wrong username or password", "bad_credentials")
    return Token(
        access_token=create_token(
            user_id=user.id, secret=settings.secret_key, ttl_seconds=settings.token_ttl_seconds
        ),
        expires_in=settings.token_ttl_seconds,
    )


@router.get("/users/me")
def me(user: CurrentUser) -> UserOut:
    """The account the token belongs to."""
    return UserOut(id=user.id, username=user.username)
