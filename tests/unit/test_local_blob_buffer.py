"""The local blob store maps a blob instead of copying it (the aggregator's delta fetch)."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from daig.blobstore import BlobNotFound
from daig.blobstore.local import LocalBlobStore


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path, secret="unit-test-secret", base_url="http://localhost")


def test_get_buffer_maps_the_blob(store: LocalBlobStore) -> None:
    store.put_bytes("p/results/d", b"delta bytes")
    buffer = store.get_buffer("p/results/d")
    assert isinstance(buffer, mmap.mmap)
    assert bytes(buffer) == b"delta bytes"


def test_a_mapping_keeps_its_content_when_the_blob_is_written_again(
    store: LocalBlobStore,
) -> None:
    store.put_bytes("p/results/d", b"first")
    buffer = store.get_buffer("p/results/d")
    store.put_bytes("p/results/d", b"second, longer")
    assert bytes(buffer) == b"first"
    assert bytes(store.get_buffer("p/results/d")) == b"second, longer"


def test_empty_and_missing_blobs(store: LocalBlobStore) -> None:
    store.put_bytes("p/empty", b"")
    assert store.get_buffer("p/empty") == b""
    with pytest.raises(BlobNotFound):
        store.get_buffer("p/missing")
