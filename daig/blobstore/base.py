"""The blob store interface both backends implement. All transfers stream in chunks."""

from __future__ import annotations

import mmap
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)*$")


class BlobNotFound(KeyError):
    """No blob under that key."""


class InvalidKey(ValueError):
    """A key with characters or segments (like ``..``) the store does not allow."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidKey(f"invalid blob key {key!r}")
    return key


class BlobStore(ABC):
    """Keys are ``/``-separated names of letters, digits, ``.``, ``_`` and ``-``."""

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO) -> int:
        """Store everything read from ``stream`` under ``key`` (atomically); return its size."""

    def put_file(self, key: str, path: Path) -> int:
        with open(path, "rb") as stream:
            return self.put_stream(key, stream)

    def put_bytes(self, key: str, data: bytes) -> int:
        import io

        return self.put_stream(key, io.BytesIO(data))

    @abstractmethod
    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """A readable stream of the blob; raises ``BlobNotFound``."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def get_buffer(self, key: str) -> bytes | mmap.mmap:
        """The blob's content, read-only, as cheaply as the backend allows (``get_bytes``
        unless a backend can map it). It stays what it was when read, even if the key is
        written again; keep it alive while views into it are used."""
        return self.get_bytes(key)

    def download(self, key: str, path: Path) -> None:
        with self.open(key) as source, open(path, "wb") as target:
            while chunk := source.read(CHUNK):
                target.write(chunk)

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size in bytes, or None if there is no such blob."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob whose key starts with ``prefix/``."""

    @abstractmethod
    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete these blobs; keys with no blob are skipped quietly."""

    @abstractmethod
    def presign_get(self, key: str, ttl_seconds: int) -> str:
        """A URL anyone can GET (with HTTP ``Range``) until it expires."""

    @abstractmethod
    def presign_put(self, key: str, ttl_seconds: int, max_bytes: int | None = None) -> str:
        """A URL anyone can PUT this one key to until it expires."""
