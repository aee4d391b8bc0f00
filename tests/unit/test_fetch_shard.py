"""A provider's shard download: only the rows asked for, streamed to disk, refused if wrong."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.lib import format as npformat

from daig.contract.http import RemoteArray
from daig.npy import read_header
from provider_agent import fetch


def stored(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    npformat.write_array(out, array, allow_pickle=False)
    return out.getvalue()


def remote_for(data: bytes, start_row: int, stop_row: int) -> RemoteArray:
    header = read_header(io.BytesIO(data), file_size=len(data))
    byte_start, byte_end = header.byte_range(start_row, stop_row)
    return RemoteArray(
        url="http://blobs.test/data",
        byte_start=byte_start,
        byte_end=byte_end,
        rows=stop_row - start_row,
        row_shape=list(header.row_shape),
        dtype=header.dtype,
    )


class RangeServer:
    """Serves ``data`` honouring ``Range`` (or not), and counts the body bytes it sent."""

    def __init__(self, data: bytes, *, honour_range: bool = True, cut: int = 0) -> None:
        self.data, self.honour_range, self.cut = data, honour_range, cut
        self.sent = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        first, last = request.headers["range"].removeprefix("bytes=").split("-")
        body = self.data[int(first) : int(last) + 1] if self.honour_range else self.data
        body = body[: len(body) - self.cut]
        return httpx.Response(206 if self.honour_range else 200, content=self._stream(body))

    def _stream(self, body: bytes) -> Any:
        for offset in range(0, len(body), 4096):
            self.sent += len(body[offset : offset + 4096])
            yield body[offset : offset + 4096]


def client(server: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server))


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i8", "|b1"])
def test_the_rows_asked_for_are_saved_as_np_save_would(tmp_path: Path, dtype: str) -> None:
    array = (np.arange(50 * 3 * 4).reshape(50, 3, 4) % 7).astype(dtype)
    data = stored(array)
    target = tmp_path / "x.npy"
    fetch.shard(client(RangeServer(data)), remote_for(data, 10, 37), target)
    rows = np.load(target, allow_pickle=False)
    np.testing.assert_array_equal(rows, array[10:37])
    assert rows.dtype == array.dtype
    np.save(tmp_path / "expected.npy", array[10:37], allow_pickle=False)
    assert target.read_bytes() == (tmp_path / "expected.npy").read_bytes()


def test_a_server_ignoring_range_is_refused_without_reading_the_file(tmp_path: Path) -> None:
    data = stored(np.zeros((20_000, 16), dtype=np.float32))
    server = RangeServer(data, honour_range=False)
    with pytest.raises(fetch.FetchError, match="HTTP 200 instead of 206"):
        fetch.shard(client(server), remote_for(data, 0, 10), tmp_path / "x.npy")
    assert server.sent < len(data) // 10
    assert not (tmp_path / "x.npy").exists()


def test_a_short_range_leaves_no_file(tmp_path: Path) -> None:
    data = stored(np.ones((100, 8), dtype=np.float32))
    with pytest.raises(fetch.FetchError, match="with 92 of 96 bytes"):
        fetch.shard(client(RangeServer(data, cut=4)), remote_for(data, 5, 8), tmp_path / "x.npy")
    assert not (tmp_path / "x.npy").exists()


def test_rows_that_do_not_fill_the_range_are_refused(tmp_path: Path) -> None:
    data = stored(np.ones((100, 8), dtype=np.float32))
    remote = remote_for(data, 5, 8).model_copy(update={"rows": 4})
    with pytest.raises(fetch.FetchError, match="4 rows are 128 bytes"):
        fetch.shard(client(RangeServer(data)), remote, tmp_path / "x.npy")


def test_server_errors_are_worth_retrying(tmp_path: Path) -> None:
    data = stored(np.ones((10, 2), dtype=np.float32))
    unavailable = client(lambda request: httpx.Response(503))
    with pytest.raises(fetch.FetchUnavailable):
        fetch.shard(unavailable, remote_for(data, 0, 5), tmp_path / "x.npy")
