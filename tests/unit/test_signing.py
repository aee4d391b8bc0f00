"""HMAC signatures of the local blob store's presigned URLs."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from daig.blobstore.signing import signature, signed_url, verify

SECRET = "test-secret"
KEY = "projects/7/data x+y.npy"


def parts(url: str) -> dict[str, object]:
    parsed = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    key = unquote(parsed.path.removeprefix("/v1/blobs/"))
    max_bytes = int(query["max_bytes"]) if "max_bytes" in query else None
    return {
        "method": query["method"],
        "key": key,
        "expires": int(query["expires"]),
        "sig": query["sig"],
        "max_bytes": max_bytes,
    }


def check(url_parts: dict[str, object], **changes: object) -> str | None:
    fields = {**url_parts, **changes}
    return verify(SECRET, **fields)  # type: ignore[arg-type]


def test_signed_url_verifies() -> None:
    url = signed_url("http://api.example/", SECRET, "GET", KEY, ttl_seconds=60)
    assert url.startswith("http://api.example/v1/blobs/")
    got = parts(url)
    assert got["key"] == KEY
    assert got["max_bytes"] is None
    assert check(got) is None


def test_signed_put_with_size_limit_verifies() -> None:
    got = parts(signed_url("http://api", SECRET, "PUT", KEY, 60, max_bytes=1024))
    assert got["max_bytes"] == 1024
    assert check(got) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"key": "projects/8/data x+y.npy"},
        {"method": "PUT"},
        {"max_bytes": 10**9},
        {"sig": "0" * 64},
    ],
)
def test_tampering_is_refused(changes: dict) -> None:
    got = parts(signed_url("http://api", SECRET, "GET", KEY, 60, max_bytes=1024))
    assert check(got, **changes) == "invalid signature for this key and method"


def test_dropping_the_size_limit_is_refused() -> None:
    got = parts(signed_url("http://api", SECRET, "PUT", KEY, 60, max_bytes=1024))
    assert check(got, max_bytes=None) is not None


def test_extending_the_expiry_is_refused() -> None:
    got = parts(signed_url("http://api", SECRET, "GET", KEY, 60))
    assert check(got, expires=got["expires"] + 3600) is not None


def test_another_secret_is_refused() -> None:
    got = parts(signed_url("http://api", "other-secret", "GET", KEY, 60))
    assert check(got) is not None


def test_expired_link_is_refused() -> None:
    expires = int(time.time()) - 1
    sig = signature(SECRET, "GET", KEY, expires, None)
    assert "expired" in verify(SECRET, "GET", KEY, expires, sig, None)


def test_negative_ttl_gives_an_expired_link() -> None:
    got = parts(signed_url("http://api", SECRET, "GET", KEY, ttl_seconds=-5))
    assert "expired" in check(got)


def test_signature_is_deterministic_and_hex() -> None:
    first = signature(SECRET, "GET", KEY, 1_900_000_000, 5)
    assert first == signature(SECRET, "GET", KEY, 1_900_000_000, 5)
    assert len(first) == 64
    int(first, 16)


def test_zero_byte_limit_is_not_the_same_as_no_limit() -> None:
    got = parts(signed_url("http://api", SECRET, "PUT", KEY, 60, max_bytes=0))
    assert got["max_bytes"] == 0
    assert check(got) is None
    assert check(got, max_bytes=None) == "invalid signature for this key and method"
