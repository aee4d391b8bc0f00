"""Reading ``.npy`` headers safely and cutting row shards out of a file as byte ranges."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npformat

from daig.npy import ArrayRejected, NpyHeader, read_header, rows_from_bytes


class MkdirOnUnpickle:
    """Unpickling this object creates a directory: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    out = io.BytesIO()
    npformat.write_array(out, array, version=version, allow_pickle=array.dtype.hasobject)
    return out.getvalue()


def header_of(data: bytes, **kwargs) -> NpyHeader:
    return read_header(io.BytesIO(data), file_size=len(data), **kwargs)


def rejection(data: bytes, file_size: int | None = None) -> str:
    size = len(data) if file_size is None else file_size
    with pytest.raises(ArrayRejected) as error:
        read_header(io.BytesIO(data), file_size=size, what="the data file")
    return str(error.value)


# --- accepted arrays and their byte ranges ---------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(60, dtype=np.float32).reshape(20, 3),
        np.arange(24, dtype=np.int64).reshape(6, 2, 2),
        np.arange(7, dtype=np.uint8),
        np.array([True, False, True]),
        np.arange(10, dtype=np.float16).reshape(5, 2),
        np.arange(12, dtype=">f8").reshape(4, 3),  # big-endian is still numeric
    ],
    ids=["f4-2d", "i8-3d", "u1-1d", "bool", "f2", "big-endian"],
)
def test_header_describes_the_array(array: np.ndarray) -> None:
    data = npy_bytes(array)
    header = header_of(data)
    assert header.shape == array.shape
    assert np.dtype(header.dtype) == array.dtype
    assert header.rows == array.shape[0]
    assert header.row_shape == array.shape[1:]
    assert header.data_offset + header.data_bytes == len(data)
    assert data[header.data_offset :] == array.tobytes()


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_npy_version_is_read(version: tuple[int, int]) -> None:
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    header = header_of(npy_bytes(array, version))
    assert header.shape == (4, 3)


def test_header_from_a_saved_file(tmp_path: Path) -> None:
    array = np.random.default_rng(0).random((50, 8, 8)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, array)
    with open(path, "rb") as stream:
        header = read_header(stream, file_size=path.stat().st_size)
    assert header.shape == (50, 8, 8)
    assert header.row_bytes == 8 * 8 * 4


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(1).random((23, 4, 3)).astype(np.float32),
        np.arange(17, dtype=np.int32),
        np.random.default_rng(2).integers(0, 2, size=(9, 5)).astype(bool),
    ],
    ids=["f4-3d", "i4-1d", "bool-2d"],
)
def test_every_row_range_round_trips(array: np.ndarray) -> None:
    data = npy_bytes(array)
    header = header_of(data)
    rows = len(array)
    for start in range(rows + 1):
        for stop in range(start, rows + 1):
            begin, end = header.byte_range(start, stop)
            np.testing.assert_array_equal(
                rows_from_bytes(header, data[begin:end]), array[start:stop]
            )


def test_byte_ranges_are_contiguous_and_cover_the_data() -> None:
    array = np.zeros((10, 3), dtype=np.float64)
    header = header_of(npy_bytes(array))
    assert header.byte_range(0, 10) == (header.data_offset, header.data_offset + 240)
    assert header.byte_range(3, 7) == (header.data_offset + 72, header.data_offset + 168)
    assert header.byte_range(4, 4)[0] == header.byte_range(4, 4)[1]


@pytest.mark.parametrize(("start", "stop"), [(-1, 2), (3, 2), (0, 11), (11, 11)])
def test_byte_range_outside_the_rows_is_refused(start: int, stop: int) -> None:
    header = header_of(npy_bytes(np.zeros((10, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="outside"):
        header.byte_range(start, stop)


def test_partial_row_bytes_are_refused() -> None:
    header = header_of(npy_bytes(np.zeros((10, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="whole number of 12-byte rows"):
        rows_from_bytes(header, b"\x00" * 13)


def test_header_json_round_trip() -> None:
    header = header_of(npy_bytes(np.zeros((10, 3, 2), dtype=np.int16)))
    assert NpyHeader.from_json(header.to_json()) == header


# --- refusals --------------------------------------------------------------------------------


def test_pickle_payload_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([MkdirOnUnpickle(marker), 1], dtype=object), allow_pickle=True)

    with open(path, "rb") as stream, pytest.raises(ArrayRejected) as error:
        read_header(stream, file_size=path.stat().st_size, what="the data file")

    assert "dtype object" in str(error.value)
    assert "the data file" in str(error.value)
    assert not marker.exists()


def test_the_pickle_payload_is_live(tmp_path: Path) -> None:
    """Control: the payload above really runs code when something does unpickle it."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([MkdirOnUnpickle(marker), 1], dtype=object), allow_pickle=True)
    np.load(path, allow_pickle=True)
    assert marker.exists()


def test_structured_dtype_with_object_field_is_refused() -> None:
    array = np.zeros(3, dtype=[("a", "<f4"), ("b", object)])
    assert "dtype object" in rejection(npy_bytes(array))


def test_structured_dtype_is_refused() -> None:
    array = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
    assert "only bool, integer and float" in rejection(npy_bytes(array))


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(3, dtype=np.complex64),
        np.array(["a", "bc"]),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
        np.zeros(2, dtype="V4"),
    ],
    ids=["complex", "unicode", "datetime", "void"],
)
def test_non_numeric_dtypes_are_refused(array: np.ndarray) -> None:
    assert "only bool, integer and float" in rejection(npy_bytes(array))


def test_fortran_order_is_refused() -> None:
    array = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert "Fortran order" in rejection(npy_bytes(array))


@pytest.mark.parametrize("array", [np.zeros((0, 4), dtype=np.float32), np.array(3.0)])
def test_arrays_without_rows_are_refused(array: np.ndarray) -> None:
    assert "at least one row" in rejection(npy_bytes(array))


def crafted(shape: tuple[int, ...], data_bytes: int, descr: str = "<f4") -> bytes:
    """A header claiming ``shape`` (as numpy would write it), then ``data_bytes`` zero bytes."""
    out = io.BytesIO()
    npformat.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue() + b"\x00" * data_bytes


@pytest.mark.parametrize(
    ("shape", "data_bytes", "words"),
    [
        ((1, 2**70), 16, "truncated or corrupt"),  # too large for int64 arithmetic
        ((1, 2**32, 2**32), 0, "truncated or corrupt"),  # int64 product wraps to 0 bytes
        ((-1, -4), 16, "negative size"),  # (-1) * (-4) * 4 bytes looks like a 16-byte file
        ((-2, 3), 0, "negative size"),
        ((5, 0), 0, "rows hold no values"),
    ],
)
def test_crafted_shapes_are_refused(shape: tuple[int, ...], data_bytes: int, words: str) -> None:
    assert words in rejection(crafted(shape, data_bytes))


def test_truncated_file_is_refused() -> None:
    data = npy_bytes(np.zeros((10, 3), dtype=np.float32))
    message = rejection(data[:-4])
    assert "truncated or corrupt" in message
    assert str(len(data) - 4) in message


def test_file_longer_than_its_header_says_is_refused() -> None:
    data = npy_bytes(np.zeros((10, 3), dtype=np.float32))
    message = rejection(data + b"\x00" * 12)
    assert f"{len(data) + 12} bytes" in message
    assert f"describes {len(data)} bytes" in message


def test_file_size_is_optional() -> None:
    data = npy_bytes(np.zeros((10, 3), dtype=np.float32))
    assert read_header(io.BytesIO(data[:200])).rows == 10


def test_not_npy_is_refused() -> None:
    assert "not a valid .npy file" in rejection(b"PK\x03\x04 this is a zip file")


def test_empty_file_is_refused() -> None:
    assert "not a valid .npy file" in rejection(b"")


def test_unsupported_version_is_refused() -> None:
    data = bytearray(npy_bytes(np.zeros(3, dtype=np.float32)))
    data[6] = 9  # major version 9
    assert "not a valid .npy file" in rejection(bytes(data))


def test_oversized_header_is_refused() -> None:
    dictionary = repr({"descr": "<f4", "fortran_order": False, "shape": (3,)})
    padded = (dictionary + " " * (100_000 - len(dictionary))).encode() + b"\n"
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(padded)) + padded + b"\x00" * 12
    assert "not a valid .npy file" in rejection(data)


def test_header_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    dictionary = f"{{'descr': __import__('os').mkdir({str(marker)!r}), 'shape': (1,)}}"
    body = dictionary.encode() + b"\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body
    assert "not a valid .npy file" in rejection(data)
    assert not marker.exists()
