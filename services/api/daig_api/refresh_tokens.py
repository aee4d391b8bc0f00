"""Refresh tokens: long-lived logins for the DAIG window and background agents.

A refresh token is ``<id>.<secret>``: the row's id, then 256 random bits. The database keeps
only the secret's sha256 (a random secret needs no slow hash), looked up by id and compared in
constant time, so a wrong guess learns nothing and costs one indexed read. Expiry slides: each
use pushes it ``days`` past now. Tokens are not rotated, so the window and its background
agent may share one. Functions take the session and never commit: the route owns the
transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daig.db.models import RefreshToken

SECRET_BYTES = 32  # 256 bits
SCOPE = "offline_access"  # the OAuth2 scope that asks for a refresh token


class Refused(StrEnum):
    """Why a refresh token was refused (the API's ``reason``)."""

    UNKNOWN = "refresh_invalid"
    EXPIRED = "refresh_expired"
    REVOKED = "refresh_revoked"


class RefreshRefused(Exception):
    def __init__(self, why: Refused) -> None:
        super().__init__(why.value)
        self.why = why


def issue(*, session: Session, user_id: int, days: float, label: str | None) -> str:
    """A new refresh token for ``user_id`` (the only time its secret is known)."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    now = datetime.now(UTC)
    row = RefreshToken(
        id=uuid.uuid4(),
        user_id=user_id,
        secret_hash=_digest(secret),
        label=label,
        last_used_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(row)
    session.flush()
    return f"{row.id.hex}.{secret}"


def use(*, session: Session, token: str, days: float) -> int:
    """The user ``token`` logs in; its expiry slides to ``days`` from now.

    Raises ``RefreshRefused`` for a token that is malformed, unknown, wrong, expired or revoked.
    """
    row = _find(session, token)
    if row is None:
        raise RefreshRefused(Refused.UNKNOWN)
    if row.revoked_at is not None:
        raise RefreshRefused(Refused.REVOKED)
    now = datetime.now(UTC)
    if row.expires_at <= now:
        raise RefreshRefused(Refused.EXPIRED)
    row.last_used_at = now
    row.expires_at = now + timedelta(days=days)
    return row.user_id


def revoke(*, session: Session, token: str) -> bool:
    """Revoke ``token`` (already revoked, expired or unknown: nothing to do); True if it is a
    genuine token, whatever its state."""
    row = _find(session, token)
    if row is None:
        return False
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return True


def _find(session: Session, token: str) -> RefreshToken | None:
    """The row ``token`` names, if its secret matches (checked in constant time)."""
    token_id, _, secret = token.partition(".")
    try:
        row_id = uuid.UUID(hex=token_id)
    except ValueError:
        return None
    row = session.scalars(
        select(RefreshToken).where(RefreshToken.id == row_id).with_for_update()
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
        return None
    return row


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
