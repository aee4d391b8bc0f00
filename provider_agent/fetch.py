"""Downloading what a task needs from presigned URLs: the model (cached), weights, shard rows."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from daig.npy import NpyHeader, rows_from_bytes

CHUNK = 1024 * 1024


class FetchError(Exception):
    """A download returned something other than what the server described."""


class FetchUnavailable(FetchError):
    """The server did not answer or answered 5xx: worth retrying."""


def _get(http: httpx.Client, url: str, target: Path, headers: dict[str, str] | None = None) -> None:
    try:
        with http.stream("GET", url, headers=headers or {}) as response:
            if response.status_code >= 500:
                raise FetchUnavailable(f"download failed with HTTP {response.status_code}")
            if response.status_code >= 400:
                raise FetchError(f"download failed with HTTP {response.status_code}")
            with open(target, "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
    except httpx.TransportError as exc:
        raise FetchUnavailable(f"download failed: {exc}") from exc


def cached_model(http: httpx.Client, url: str, sha256: str, cache_dir: Path) -> Path:
    """The model file, downloaded once per distinct content and checked against ``sha256``."""
    target = cache_dir / f"{sha256}.h5"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".{sha256}.{os.getpid()}.part"
    _get(http, url, partial)
    digest = hashlib.sha256()
    with open(partial, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise FetchError("the model file's checksum does not match; refusing to use it")
    partial.replace(target)
    return target


def download(http: httpx.Client, url: str, target: Path) -> Path:
    _get(http, url, target)
    return target


def shard(http: httpx.Client, remote: dict[str, Any], target: Path) -> Path:
    """Fetch only this shard's rows (an HTTP Range) and save them as a small ``.npy``."""
    start, end = int(remote["byte_start"]), int(remote["byte_end"])
    try:
        response = http.get(remote["url"], headers={"Range": f"bytes={start}-{end - 1}"})
    except httpx.TransportError as exc:
        raise FetchUnavailable(f"shard download failed: {exc}") from exc
    if response.status_code >= 500:
        raise FetchUnavailable(f"shard download failed with HTTP {response.status_code}")
    if response.status_code != 206 or len(response.content) != end - start:
        raise FetchError(
            f"shard download returned HTTP {response.status_code} with "
            f"{len(response.content)} of {end - start} bytes"
        )
    header = NpyHeader(
        dtype=remote["dtype"], shape=(int(remote["rows"]), *remote["row_shape"]), data_offset=0
    )
    rows = rows_from_bytes(header, response.content)
    np.save(target, rows, allow_pickle=False)
    return target
