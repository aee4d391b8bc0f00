"""Blob store on the local filesystem; presigned URLs point at the API's ``/v1/blobs`` route."""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from daig.blobstore import signing
from daig.blobstore.base import CHUNK, BlobNotFound, BlobStore, check_key


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | Path, *, secret: str, base_url: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret = secret
        self._base_url = base_url

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return size

    def put_file(self, key: str, path: Path) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".copy-{target.name}")
        shutil.copyfile(path, temp)
        os.replace(temp, target)
        return target.stat().st_size

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            stream = open(self.path(key), "rb")  # noqa: SIM115 - closed below, after the yield
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        with stream:
            yield stream

    def get_buffer(self, key: str) -> bytes | mmap.mmap:
        """The file mapped read-only: no copy, no page faults of fresh memory (twice as fast
        as ``get_bytes`` for a 42 MB delta). Blobs are replaced by rename, never rewritten in
        place, so the mapping keeps the content it had when opened."""
        try:
            with open(self.path(key), "rb") as stream:
                if os.fstat(stream.fileno()).st_size == 0:
                    return b""  # an empty file cannot be mapped
                return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def delete_keys(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        return signing.signed_url(self._base_url, self._secret, "GET", check_key(key), ttl_seconds)

    def presign_put(self, key: str, ttl_seconds: int, max_bytes: int | None = None) -> str:
        return signing.signed_url(
            self._base_url, self._secret, "PUT", check_key(key), ttl_seconds, max_bytes
        )
