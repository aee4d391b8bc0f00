"""Both blob stores against real backends: the local one (presigned URLs served by the real API)
and S3 (moto's S3 server over HTTP). Same contract, same tests, plus the local URLs' defences.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from daig.blobstore import BlobNotFound, BlobStore, InvalidKey, open_blob_store, signing
from daig.blobstore.base import CHUNK
from daig.blobstore.local import LocalBlobStore
from daig.blobstore.s3 import S3BlobStore

BAD_KEYS = ["../x", "a/../b", "./a", "/abs", "a//b", "a/", "a b", "a\\b", ""]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> BlobStore:
    if request.param == "local":
        # The local store's presigned URLs are served by the API, so share the server's settings.
        server = request.getfixturevalue("shared_api_server")
        return open_blob_store(server.settings)
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3BlobStore(
        bucket=f"daig-test-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint,
        access_key="test",
        secret_key="test",
    )


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own (the local store's directory is shared by the module)."""
    return f"t-{uuid.uuid4().hex[:12]}"


def test_put_get_size_exists_and_download(store: BlobStore, prefix: str, tmp_path: Path) -> None:
    key = f"{prefix}/files/model"
    assert store.size(key) is None and not store.exists(key)
    with pytest.raises(BlobNotFound):
        store.get_bytes(key)

    assert store.put_stream(key, io.BytesIO(b"first version")) == len(b"first version")
    assert store.get_bytes(key) == b"first version"
    assert store.put_bytes(key, b"second") == 6  # overwrites in place
    assert store.get_bytes(key) == b"second"
    assert store.size(key) == 6 and store.exists(key)

    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(4096))
    assert store.put_file(f"{prefix}/copy.bin", source) == 4096
    target = tmp_path / "downloaded.bin"
    store.download(f"{prefix}/copy.bin", target)
    assert target.read_bytes() == source.read_bytes()


def test_empty_blob(store: BlobStore, prefix: str) -> None:
    assert store.put_bytes(f"{prefix}/empty", b"") == 0
    assert store.size(f"{prefix}/empty") == 0
    assert store.get_bytes(f"{prefix}/empty") == b""


def test_blob_larger_than_chunks_round_trips(store: BlobStore, prefix: str, tmp_path: Path) -> None:
    # 9 MiB: several of our 1 MiB chunks, and above boto3's 8 MiB multipart threshold.
    payload = os.urandom(9 * CHUNK + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    with open(source, "rb") as stream:
        assert store.put_stream(f"{prefix}/big", stream) == len(payload)
    assert store.size(f"{prefix}/big") == len(payload)
    target = tmp_path / "big-back.bin"
    store.download(f"{prefix}/big", target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(payload).digest()


def test_delete_prefix_deletes_only_that_folder(store: BlobStore, prefix: str) -> None:
    doomed = [f"{prefix}/a/b/1", f"{prefix}/a/b/2", f"{prefix}/a/b/deep/3"]
    kept = [f"{prefix}/a/c", f"{prefix}/a/bc/x", f"{prefix}/a/b2"]
    for key in doomed + kept:
        store.put_bytes(key, key.encode())
    store.delete_prefix(f"{prefix}/a/b")
    assert [store.exists(key) for key in doomed] == [False] * len(doomed)
    assert [store.get_bytes(key) for key in kept] == [key.encode() for key in kept]
    store.delete_prefix(f"{prefix}/nothing-here")  # no error for an empty prefix


def test_delete_keys_deletes_exactly_those_keys(
    store: BlobStore, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = [f"{prefix}/w/{n:06d}.dwt" for n in range(5)]
    kept = [f"{prefix}/w/000005.dwt", f"{prefix}/other"]
    for key in doomed + kept:
        store.put_bytes(key, key.encode())
    if isinstance(store, S3BlobStore):  # several DeleteObjects requests, as for > 1,000 keys
        monkeypatch.setattr("daig.blobstore.s3._DELETE_BATCH", 2)
    store.delete_keys([*doomed, f"{prefix}/never-written"])  # a missing key is no error
    assert [store.exists(key) for key in doomed] == [False] * len(doomed)
    assert [store.get_bytes(key) for key in kept] == [key.encode() for key in kept]
    store.delete_keys([])
    with pytest.raises(InvalidKey):
        store.delete_keys(["../escape"])


def test_presigned_get_serves_whole_blob_and_ranges(store: BlobStore, prefix: str) -> None:
    payload = bytes(range(256)) * 20
    store.put_bytes(f"{prefix}/array.npy", payload)
    url = store.presign_get(f"{prefix}/array.npy", 60)

    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == payload

    part = httpx.get(url, headers={"Range": "bytes=100-1123"})
    assert part.status_code == 206
    assert part.content == payload[100:1124]
    assert part.headers["content-range"] == f"bytes 100-1123/{len(payload)}"

    tail = httpx.get(url, headers={"Range": f"bytes={len(payload) - 7}-"})
    assert tail.status_code == 206 and tail.content == payload[-7:]


def test_presigned_put_stores_the_upload(store: BlobStore, prefix: str) -> None:
    key = f"{prefix}/rounds/000000/delta.dwt"
    url = store.presign_put(key, 60, max_bytes=1000)
    response = httpx.put(url, content=b"delta bytes" * 10)
    assert response.status_code in (200, 201), response.text
    assert store.get_bytes(key) == b"delta bytes" * 10


def test_presigned_get_of_missing_blob_is_404(store: BlobStore, prefix: str) -> None:
    assert httpx.get(store.presign_get(f"{prefix}/missing", 60)).status_code == 404


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused(store: BlobStore, key: str) -> None:
    operations = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.size(key),
        lambda: store.delete_prefix(key),
        lambda: store.presign_get(key, 60),
        lambda: store.presign_put(key, 60),
    ]
    for operation in operations:
        with pytest.raises(InvalidKey):
            operation()


def test_s3_store_creates_a_missing_bucket(s3_endpoint: str) -> None:
    bucket = f"daig-new-{uuid.uuid4().hex[:12]}"
    options = {"endpoint_url": s3_endpoint, "access_key": "test", "secret_key": "test"}
    first = S3BlobStore(bucket=bucket, prefix="deploy-a", **options)
    first.put_bytes("k", b"v")
    # A second store on the existing bucket finds it; its prefix keeps the namespaces apart.
    second = S3BlobStore(bucket=bucket, prefix="deploy-b", **options)
    assert second.size("k") is None
    assert S3BlobStore(bucket=bucket, prefix="deploy-a", **options).get_bytes("k") == b"v"


# --- the local store's presigned URLs: what the API route refuses ------------------------------
@pytest.fixture
def local(shared_api_server) -> LocalBlobStore:
    store = open_blob_store(shared_api_server.settings)
    assert isinstance(store, LocalBlobStore)
    return store


def _with_query(url: str, **changes: object) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_local_url_with_tampered_signature_is_refused(local: LocalBlobStore, prefix: str) -> None:
    local.put_bytes(f"{prefix}/secret", b"data")
    url = local.presign_get(f"{prefix}/secret", 60)
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    tampered = _with_query(url, sig=("0" if sig[0] != "0" else "1") + sig[1:])
    response = httpx.get(tampered)
    assert response.status_code == 403
    assert "invalid signature" in response.json()["detail"]
    # A longer validity is part of what is signed, so it cannot be extended either.
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert httpx.get(_with_query(url, expires=expires + 3600)).status_code == 403


def test_local_url_signed_for_one_key_does_not_open_another(
    local: LocalBlobStore, prefix: str
) -> None:
    local.put_bytes(f"{prefix}/mine", b"mine")
    local.put_bytes(f"{prefix}/theirs", b"theirs")
    url = local.presign_get(f"{prefix}/mine", 60)
    other = url.replace(f"{prefix}/mine", f"{prefix}/theirs")
    response = httpx.get(other)
    assert response.status_code == 403
    assert b"theirs" not in response.content


def test_local_url_for_one_method_does_not_allow_the_other(
    local: LocalBlobStore, prefix: str
) -> None:
    local.put_bytes(f"{prefix}/blob", b"original")
    get_url = local.presign_get(f"{prefix}/blob", 60)
    assert httpx.put(get_url, content=b"overwritten").status_code == 403
    put_url = local.presign_put(f"{prefix}/blob", 60)
    assert httpx.get(put_url).status_code == 403
    assert local.get_bytes(f"{prefix}/blob") == b"original"


def test_expired_local_url_is_refused(local: LocalBlobStore, prefix: str) -> None:
    local.put_bytes(f"{prefix}/blob", b"data")
    url = local.presign_get(f"{prefix}/blob", 2)
    assert httpx.get(url).status_code == 200
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    time.sleep(max(0.0, expires - time.time()) + 0.2)
    response = httpx.get(url)
    assert response.status_code == 403
    assert "expired" in response.json()["detail"]
    put = httpx.put(local.presign_put(f"{prefix}/new", -5), content=b"late")
    assert put.status_code == 403 and not local.exists(f"{prefix}/new")


def test_local_put_over_max_bytes_is_refused_and_stores_nothing(
    local: LocalBlobStore, prefix: str
) -> None:
    key = f"{prefix}/rounds/delta.dwt"
    url = local.presign_put(key, 60, max_bytes=1000)
    assert httpx.put(url, content=b"x" * 1000).status_code == 201  # exactly the limit is fine
    response = httpx.put(url, content=b"y" * 5000)
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]
    assert local.get_bytes(key) == b"x" * 1000  # the earlier upload is intact
    leftovers = [p.name for p in local.path(key).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    # Raising the limit in the URL breaks the signature.
    assert httpx.put(_with_query(url, max_bytes=10**9), content=b"y" * 5000).status_code == 403


def test_local_route_refuses_keys_outside_the_store_even_when_signed(
    local: LocalBlobStore, shared_api_server
) -> None:
    outside = local.root.parent / "outside.txt"
    outside.write_bytes(b"not a blob")
    secret = shared_api_server.settings.secret_key
    expires = int(time.time()) + 60
    for method in ("GET", "PUT"):
        sig = signing.signature(secret, method, "../outside.txt", expires, None)
        # %2E%2E keeps the client from normalising the dots away before the server sees them.
        url = f"{shared_api_server.url}/v1/blobs/%2E%2E/outside.txt?expires={expires}&sig={sig}"
        response = httpx.request(method, url, content=b"overwrite" if method == "PUT" else None)
        assert response.status_code == 400, (method, response.text)
        assert "invalid blob key" in response.json()["detail"]
    assert outside.read_bytes() == b"not a blob"
