"""Reading ``.npy`` headers safely and cutting row shards out of a file as byte ranges.

An ``.npy`` file is a small header followed by the array's bytes in C order, so rows
``[a, b)`` are one contiguous byte range. Nothing here unpickles: headers are parsed with
``numpy.lib.format``'s literal parser and object or structured dtypes are refused.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

# The header of a valid .npy file is at most a few KiB; reading more is pointless.
MAX_HEADER_BYTES = 64 * 1024
NUMERIC_KINDS = frozenset("biuf")


class ArrayRejected(ValueError):
    """An uploaded array that DAIG will not accept; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class NpyHeader:
    """What a ``.npy`` header says: dtype, shape, and where the data starts."""

    dtype: str
    shape: tuple[int, ...]
    data_offset: int

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def row_bytes(self) -> int:
        # Python integers: a crafted shape must not overflow into a size that looks right.
        return math.prod(self.row_shape) * np.dtype(self.dtype).itemsize

    @property
    def data_bytes(self) -> int:
        return self.rows * self.row_bytes

    def byte_range(self, start_row: int, stop_row: int) -> tuple[int, int]:
        """Half-open byte range of rows ``[start_row, stop_row)`` in the file."""
        if not 0 <= start_row <= stop_row <= self.rows:
            raise ValueError(f"rows [{start_row}, {stop_row}) outside 0..{self.rows}")
        return (
            self.data_offset + start_row * self.row_bytes,
            self.data_offset + stop_row * self.row_bytes,
        )

    def to_json(self) -> dict[str, object]:
        return {"dtype": self.dtype, "shape": list(self.shape), "data_offset": self.data_offset}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> NpyHeader:
        shape = data["shape"]
        offset = data["data_offset"]
        assert isinstance(shape, list) and isinstance(offset, int)
        return cls(dtype=str(data["dtype"]), shape=tuple(int(s) for s in shape), data_offset=offset)


def read_header(
    stream: BinaryIO, *, file_size: int | None = None, what: str = "array"
) -> NpyHeader:
    """Parse and check the header at the start of ``stream``.

    Raises ``ArrayRejected`` for anything that is not a numeric, C-ordered array with at least
    one row, or whose data does not match ``file_size`` exactly.
    """
    head = stream.read(MAX_HEADER_BYTES)
    buffer = io.BytesIO(head)
    try:
        version = npformat.read_magic(buffer)
        if version == (1, 0):
            shape, fortran_order, dtype = npformat.read_array_header_1_0(buffer)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = npformat.read_array_header_2_0(buffer)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:
        raise ArrayRejected(
            f"{what} is not a valid .npy file ({exc}); save it with "
            "numpy.save(path, array) on a numeric array"
        ) from exc
    header = NpyHeader(dtype=dtype.str, shape=tuple(shape), data_offset=buffer.tell())
    _check(header, dtype, fortran_order, file_size, what)
    return header


def _check(
    header: NpyHeader, dtype: np.dtype, fortran_order: bool, file_size: int | None, what: str
) -> None:
    if dtype.hasobject or dtype.kind == "O":
        raise ArrayRejected(
            f"{what} has dtype object, which would need unpickling to read and could run code; "
            "convert it to a numeric dtype first, e.g. np.save(path, array.astype('float32'))"
        )
    if dtype.fields is not None or dtype.kind not in NUMERIC_KINDS:
        raise ArrayRejected(
            f"{what} has dtype {dtype}; only bool, integer and float arrays are accepted"
        )
    if fortran_order:
        raise ArrayRejected(
            f"{what} is stored in Fortran order; save np.ascontiguousarray(array) instead"
        )
    if any(size < 0 for size in header.shape):
        raise ArrayRejected(
            f"{what} has shape {header.shape} with a negative size; the header is corrupt, "
            "save the array again"
        )
    if len(header.shape) == 0 or header.rows == 0:
        raise ArrayRejected(f"{what} has shape {header.shape}; it needs at least one row")
    if header.row_bytes == 0:
        raise ArrayRejected(f"{what} has shape {header.shape}; its rows hold no values")
    if file_size is not None and file_size != header.data_offset + header.data_bytes:
        raise ArrayRejected(
            f"{what} is {file_size} bytes but its header describes "
            f"{header.data_offset + header.data_bytes} bytes (shape {header.shape}, "
            f"dtype {dtype}); the file is truncated or corrupt, save it again"
        )


def rows_from_bytes(header: NpyHeader, data: bytes) -> np.ndarray:
    """Turn the raw bytes of some whole rows (as fetched by a byte range) into an array."""
    if len(data) % max(header.row_bytes, 1):
        raise ValueError(f"{len(data)} bytes is not a whole number of {header.row_bytes}-byte rows")
    rows = len(data) // header.row_bytes if header.row_bytes else 0
    return np.frombuffer(data, dtype=np.dtype(header.dtype)).reshape((rows, *header.row_shape))
