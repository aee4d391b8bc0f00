"""Password hashing (Argon2id) and bearer tokens (signed JWTs that expire)."""

from __future__ import annotations

import threading
import time
from functools import cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash("daig-no-such-user")


def verify_login(password_hash: str | None, password: str) -> bool:
    """Check a password; an unknown user (None) costs the same hashing time, then fails."""
    if password_hash is None:
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(password_hash, password)


def create_token(*, user_id: int, secret: str, ttl_seconds: int) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": str(user_id), "iat": now, "exp": now + ttl_seconds}, secret, ALGORITHM
    )


def user_id_from_token(token: str, secret: str) -> int | None:
    """The token's user id, or None if it is invalid or expired."""
    known = _verified.get((token, secret))
    if known is not None:
        user_id, expires = known
        return user_id if time.time() < expires else None
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
        user_id = int(payload["sub"])
    except (jwt.PyJWTError, ValueError):
        return None
    # A verified token never changes: an agent's next thousand requests skip the HMAC.
    with _verified_lock:
        if len(_verified) >= VERIFIED_TOKENS:
            _verified.pop(next(iter(_verified)))
        _verified[(token, secret)] = (user_id, float(payload["exp"]))
    return user_id


VERIFIED_TOKENS = 10_000
_verified: dict[tuple[str, str], tuple[int, float]] = {}
_verified_lock = threading.Lock()
