"""Downloading what a task needs from presigned URLs: the model (cached), weights, shard rows."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import BinaryIO

import httpx
import numpy as np
from numpy.lib import format as npformat

from daig.contract.http import RemoteArray
from daig.npy import NpyHeader

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


def write_inline(encoded: str, target: Path) -> Path:
    """Write bytes the server sent inside a message (base64) to ``target``.

    Invalid base64 is refused like a failed download (the task is given back); what the bytes
    hold is checked where they are read (the weight stream's headers against the schema).
    """
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FetchError(f"the grant's inline weights are not valid base64 ({exc})") from exc
    target.write_bytes(data)
    return target


def shard(http: httpx.Client, remote: RemoteArray, target: Path) -> Path:
    """Fetch only this shard's rows (an HTTP Range) and save them as a small ``.npy``.

    The rows are streamed into the file a chunk at a time, so the agent never holds a shard
    in memory (the training child loads it), and a response that is not the range asked for
    is refused before its body is read.
    """
    start, end = remote.byte_start, remote.byte_end
    header = NpyHeader(dtype=remote.dtype, shape=(remote.rows, *remote.row_shape), data_offset=0)
    if header.data_bytes != end - start:
        raise FetchError(
            f"the shard's {header.rows} rows are {header.data_bytes} bytes but its byte range "
            f"is {end - start}"
        )
    received = 0
    try:
        with http.stream(
            "GET", remote.url, headers={"Range": f"bytes={start}-{end - 1}"}
        ) as response:
            if response.status_code >= 500:
                raise FetchUnavailable(f"shard download failed with HTTP {response.status_code}")
            if response.status_code != 206:
                raise FetchError(
                    f"shard download returned HTTP {response.status_code} instead of 206 with "
                    f"the {end - start} bytes asked for"
                )
            with open(target, "wb") as out:
                _write_npy_header(out, header)
                for chunk in response.iter_bytes(CHUNK):
                    received += len(chunk)
                    if received > end - start:
                        break
                    out.write(chunk)
    except httpx.TransportError as exc:
        target.unlink(missing_ok=True)
        raise FetchUnavailable(f"shard download failed: {exc}") from exc
    if received != end - start:
        target.unlink(missing_ok=True)
        raise FetchError(f"shard download returned HTTP 206 with {received} of {end - start} bytes")
    return target


def _write_npy_header(out: BinaryIO, header: NpyHeader) -> None:
    """The header ``np.save`` would write for an array of ``header``'s dtype and shape."""
    fields = {
        "descr": npformat.dtype_to_descr(np.dtype(header.dtype)),
        "fortran_order": False,
        "shape": header.shape,
    }
    try:
        npformat.write_array_header_1_0(out, fields)
    except ValueError:  # a header over 64 KiB needs format 2.0
        npformat.write_array_header_2_0(out, fields)
