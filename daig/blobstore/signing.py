"""HMAC signatures for the local blob store's presigned URLs, served and checked by the API."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode


def signature(secret: str, method: str, key: str, expires: int, max_bytes: int | None) -> str:
    # "is None", not "or": a limit of 0 bytes must not sign the same as no limit at all.
    limit = "" if max_bytes is None else str(max_bytes)
    message = f"{method}\n{key}\n{expires}\n{limit}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_url(
    base_url: str,
    secret: str,
    method: str,
    key: str,
    ttl_seconds: int,
    max_bytes: int | None = None,
) -> str:
    expires = int(time.time()) + ttl_seconds
    query = {
        "method": method,
        "expires": expires,
        "sig": signature(secret, method, key, expires, max_bytes),
    }
    if max_bytes is not None:
        query["max_bytes"] = max_bytes
    return f"{base_url.rstrip('/')}/v1/blobs/{quote(key)}?{urlencode(query)}"


def verify(
    secret: str, method: str, key: str, expires: int, sig: str, max_bytes: int | None
) -> str | None:
    """None if the signature is valid and current, else the reason it is not."""
    if expires < time.time():
        return "this link has expired; ask for a new one"
    expected = signature(secret, method, key, expires, max_bytes)
    # compare_digest refuses non-ASCII str; a signature is hex, so anything else is wrong.
    if not sig.isascii() or not hmac.compare_digest(expected, sig):
        return "invalid signature for this key and method"
    return None
