"""Sign-up and OAuth2 password-flow tokens (refresh tokens on request), with per-account and
per-address rate limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.exc import IntegrityError

from daig.contract.http import PrintableStr, SignupRequest, StandingOut, Token, UserOut
from daig.credits import ledger
from daig.credits.units import to_units
from daig.db.models import User
from daig.settings import Settings
from daig.standing import standing_of
from daig_api import crud, refresh_tokens
from daig_api.deps import (
    ClientIpDep,
    CurrentUser,
    RateLimiterDep,
    SessionDep,
    SettingsDep,
)
from daig_api.errors import ApiError
from daig_api.ratelimit import LOGIN_IP, LOGIN_USER, SIGNUP_IP, Limit
from daig_api.security import create_token, hash_password, verify_login

router = APIRouter(prefix="/v1", tags=["auth"])

_RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many attempts; the Retry-After header says when to try again"}
}


def login_limits(settings: Settings, username: str, ip: str) -> list[Limit]:
    """Failed logins per (account, address) and per address, with exponential backoff.

    Never per account alone: a stranger's guesses from elsewhere must not lock the owner out
    of their own address. Logged-in clients (tokens) are never counted."""

    def backoff(bucket: str, key: str, free: int, what: str) -> Limit:
        return Limit(
            bucket,
            key,
            free,
            settings.login_window_seconds,
            what,
            backoff_seconds=settings.login_backoff_seconds,
            backoff_max_seconds=settings.login_backoff_max_seconds,
        )

    return [
        backoff(
            LOGIN_USER,
            pair_key(username, ip),
            settings.login_failures_per_user,
            "too many failed logins from this address for this account",
        ),
        backoff(
            LOGIN_IP, ip, settings.login_failures_per_ip, "too many failed logins from this address"
        ),
    ]


def pair_key(username: str, ip: str) -> str:
    # The address first: it is short, so a long username cannot push it past the key's length.
    return f"{ip} {username}"


@router.post("/auth/signup", status_code=201, responses=_RATE_LIMITED)
def signup(
    body: SignupRequest,
    session: SessionDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    ip: ClientIpDep,
) -> UserOut:
    """Create an account."""
    limiter.attempt(
        [
            Limit(
                SIGNUP_IP,
                ip,
                settings.signups_per_ip,
                settings.signup_window_seconds,
                "too many sign-ups from your network address",
            )
        ]
    )
    if crud.get_user_by_name(session=session, username=body.username):
        raise ApiError(409, f"the username {body.username!r} is taken; choose another", "taken")
    user = User(
        username=body.username, password_hash=hash_password(body.password), signup_address=ip
    )
    session.add(user)
    try:
        session.flush()
        user.trust_group = crud.trust_group_for(
            session=session, user=user, window_seconds=settings.sybil_window_seconds
        )
        session.commit()
    except IntegrityError as exc:
        raise ApiError(409, f"the username {body.username!r} is taken", "taken") from exc
    ledger.ensure_grant(session, user.id, to_units(settings.credit_signup_grant))
    session.commit()
    return UserOut(id=user.id, username=user.username)


@router.post("/auth/token", responses=_RATE_LIMITED, response_model_exclude_none=True)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    ip: ClientIpDep,
    label: Annotated[
        PrintableStr | None,
        Form(max_length=200, description="Names a refresh token, e.g. 'DAIG window on host'"),
    ] = None,
) -> Token:
    """Exchange a username and password for a bearer token (and, with the ``offline_access``
    scope, a refresh token)."""
    # Counted before the password is checked, so parallel guesses can't outrun the limit.
    attempt = limiter.attempt(login_limits(settings, form.username, ip))
    user = crud.get_user_by_name(session=session, username=form.username)
    session.close()  # no connection held while the password is hashed
    if not verify_login(user.password_hash if user else None, form.password):
        limiter.failed(attempt)
        raise ApiError(401, "wrong username or password", "bad_credentials")
    assert user is not None
    # A successful login clears the account's failures from this address; the address's
    # failures (guesses at other accounts) stay.
    limiter.forget(attempt, also=[(LOGIN_USER, pair_key(form.username, ip))])
    refresh = None
    if refresh_tokens.SCOPE in form.scopes:
        refresh = refresh_tokens.issue(
            session=session, user_id=user.id, days=settings.refresh_token_days, label=label
        )
        session.commit()
    return Token(
        access_token=create_token(
            user_id=user.id, secret=settings.secret_key, ttl_seconds=settings.token_ttl_seconds
        ),
        expires_in=settings.token_ttl_seconds,
        refresh_token=refresh,
    )


@router.get("/users/me")
def me(user: CurrentUser) -> UserOut:
    """The account the token belongs to."""
    return UserOut(id=user.id, username=user.username)


@router.get("/users/me/standing")
def my_standing(user: CurrentUser, session: SessionDep) -> StandingOut:
    """Your verified record as a volunteer, and your quarantine if a result was outvoted."""
    report = standing_of(session, user.id)
    return StandingOut(
        verified_valid=report.verified_valid,
        verified_invalid=report.verified_invalid,
        trusted=report.trusted,
        quarantined=report.quarantined,
        quarantined_at=report.quarantined_at,
        reason=report.reason,
        project_name=report.project_name,
        task_id=report.task_id,
        lifted_at=report.lifted_at,
        results_waiting=report.results_held,
        summary=report.summary,
    )
