"""The DAIG weight stream: how weight lists and deltas travel and rest in the blob store.

Layout: 8 magic bytes, a little-endian uint32 length, a JSON header (codec name, tensor count,
schema hash), then the codec's ``.npy`` records written with ``allow_pickle=False`` (one per
tensor for ``fp32``, one or two flat ones for ``fp16``/``int8``; see ``codecs.py``). Reading
checks every record's header against what the codec expects for the model *before* reading its
data, so a hostile file can neither unpickle, nor claim gigabytes, nor smuggle in a different
model.

``decode_weights_view`` reads a stream held in memory without copying it (``fp32`` tensors are
read-only views into the bytes), for the aggregator's hot path; ``decode_weights`` returns
arrays of their own.
"""

from __future__ import annotations

import io
import json
import math
import mmap
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npformat

from daig.weights.codecs import Codec, get_codec
from daig.weights.schema import NDArrays, WeightSchema

MAGIC = b"DAIGWTS\x01"
MAX_HEADER_JSON = 4096
_NPY_HEADER_MAX = 4096
# Anything ``decode_weights_view`` can read (and hashlib can hash) without copying it.
BufferLike = bytes | bytearray | memoryview | mmap.mmap
_NPY_PREAMBLE = 12  # .npy magic, version and header length (v2: 4 bytes)


# Room for the stream's header and the records' .npy headers beyond the raw tensor bytes.
STREAM_OVERHEAD_BYTES = 64 * 1024
RECORD_OVERHEAD_BYTES = 128


def max_stream_bytes(schema: WeightSchema) -> int:
    """The largest weight stream ``schema`` may take (any codec): what a provider may upload
    as a delta (the API's presigned limit) and what the aggregator accepts."""
    return schema.nbytes + STREAM_OVERHEAD_BYTES + RECORD_OVERHEAD_BYTES * len(schema)


class WeightsRejected(ValueError):
    """A weight stream that is malformed or does not fit the expected schema."""


def write_weights(stream: BinaryIO, arrays: Sequence[np.ndarray], *, codec: str = "fp32") -> None:
    """Write ``arrays`` (a model's weights or a delta) to ``stream`` with ``codec``."""
    encoder = get_codec(codec)
    header = json.dumps(
        {"codec": encoder.name, "count": len(arrays), "schema_hash": WeightSchema.of(arrays).hash}
    ).encode()
    stream.write(MAGIC)
    stream.write(struct.pack("<I", len(header)))
    stream.write(header)
    for record in encoder.encode(arrays):
        npformat.write_array(stream, record, allow_pickle=False)


def encode_weights(arrays: Sequence[np.ndarray], *, codec: str = "fp32") -> bytes:
    buffer = io.BytesIO()
    write_weights(buffer, arrays, codec=codec)
    return buffer.getvalue()


def save_weights(path: Path, arrays: Sequence[np.ndarray], *, codec: str = "fp32") -> None:
    with open(path, "wb") as stream:
        write_weights(stream, arrays, codec=codec)


def read_weights(
    stream: BinaryIO, schema: WeightSchema, *, require_finite: bool = True
) -> NDArrays:
    """Read a weight stream (any codec) that must match ``schema`` exactly."""
    header = _read_stream_header(stream)
    codec = _stream_codec(header, schema)
    records = []
    for index, (shape, dtype) in enumerate(codec.record_specs(schema)):
        record = _read_record(stream, index, shape, dtype)
        if require_finite:
            _check_finite(record, index)
        records.append(record)
    if stream.read(1):
        raise WeightsRejected("trailing bytes after the last weight tensor")
    _check_schema_hash(header, schema)
    return codec.decode(records, schema)


def decode_weights_view(
    data: BufferLike, schema: WeightSchema, *, require_finite: bool = True
) -> NDArrays:
    """Decode a weight stream held in memory, with the same checks as ``read_weights``.

    Records are not copied: an ``fp32`` stream's tensors are views into ``data`` (read-only
    for ``bytes`` and read-only maps; possibly unaligned), so ``data`` must stay alive and
    unchanged while they are used.
    ``fp16``/``int8`` tensors are new float32 arrays, as with ``decode_weights``. Callers that
    check finiteness themselves (``daig_aggregator.deltas``, in the same pass as the
    norm) pass ``require_finite=False``.
    """
    view = memoryview(data)
    if not view.c_contiguous:
        raise ValueError("a weight stream must be a contiguous buffer")
    view = view.cast("B")
    head = io.BytesIO(view[: len(MAGIC) + 4 + MAX_HEADER_JSON])  # copies at most 4 KiB
    header = _read_stream_header(head)
    codec = _stream_codec(header, schema)
    offset = head.tell()
    records = []
    for index, (shape, dtype) in enumerate(codec.record_specs(schema)):
        record, offset = _view_record(view, offset, index, shape, dtype)
        if require_finite:
            _check_finite(record, index)
        records.append(record)
    if offset != len(view):
        raise WeightsRejected("trailing bytes after the last weight tensor")
    _check_schema_hash(header, schema)
    return codec.decode(records, schema)


def stream_codec(data: bytes) -> str:
    """The codec a stream declares."""
    return str(_read_stream_header(io.BytesIO(data)).get("codec", ""))


def decode_weights(data: bytes, schema: WeightSchema) -> NDArrays:
    return read_weights(io.BytesIO(data), schema)


def load_weights(path: Path, schema: WeightSchema) -> NDArrays:
    with open(path, "rb") as stream:
        return read_weights(stream, schema)


def peek_schema_hash(stream: BinaryIO) -> str:
    """The schema hash a stream declares (not verified against its records)."""
    return str(_read_stream_header(stream).get("schema_hash", ""))


def _read_stream_header(stream: BinaryIO) -> dict[str, object]:
    if stream.read(len(MAGIC)) != MAGIC:
        raise WeightsRejected("not a DAIG weight stream (bad magic bytes)")
    (length,) = struct.unpack("<I", _read_exactly(stream, 4))
    if length > MAX_HEADER_JSON:
        raise WeightsRejected(f"weight stream header of {length} bytes is too long")
    try:
        header = json.loads(_read_exactly(stream, length))
    except ValueError as exc:
        raise WeightsRejected(f"weight stream header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WeightsRejected("weight stream header is not a JSON object")
    return header


def _stream_codec(header: dict[str, object], schema: WeightSchema) -> Codec:
    """The codec a stream's header declares, if it holds as many tensors as the model."""
    try:
        codec = get_codec(str(header.get("codec")))
    except ValueError as exc:
        raise WeightsRejected(str(exc)) from exc
    if header.get("count") != len(schema):
        raise WeightsRejected(
            f"stream holds {header.get('count')} tensors, model has {len(schema)}"
        )
    return codec


def _check_schema_hash(header: dict[str, object], schema: WeightSchema) -> None:
    if header.get("schema_hash") != schema.hash:  # e.g. an int8 stream of a similar model
        raise WeightsRejected("the stream was written for another model (schema hash differs)")


def _check_finite(record: np.ndarray, index: int) -> None:
    if record.dtype.kind == "f" and not np.isfinite(record).all():
        raise WeightsRejected(f"weight tensor {index} contains NaN or infinity")


def _read_record_header(
    stream: BinaryIO, index: int, shape: tuple[int, ...], dtype: str
) -> np.dtype[Any]:
    """Read a record's ``.npy`` header; refuse it unless it is exactly ``shape``/``dtype``."""
    try:
        version = npformat.read_magic(stream)
        if version == (1, 0):
            got_shape, fortran, got_dtype = npformat.read_array_header_1_0(
                stream, max_header_size=_NPY_HEADER_MAX
            )
        else:
            got_shape, fortran, got_dtype = npformat.read_array_header_2_0(
                stream, max_header_size=_NPY_HEADER_MAX
            )
    except Exception as exc:
        raise WeightsRejected(f"weight tensor {index}: bad .npy record ({exc})") from exc
    if fortran or tuple(got_shape) != shape or got_dtype.str != dtype:
        raise WeightsRejected(
            f"weight tensor {index} is {tuple(got_shape)} {got_dtype.str}"
            f"{' (Fortran order)' if fortran else ''}; the model needs {shape} {dtype}"
        )
    return np.dtype(got_dtype)


def _read_record(stream: BinaryIO, index: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    got_dtype = _read_record_header(stream, index, shape, dtype)
    # Read straight into the result: one copy of the bytes instead of three (read, frombuffer
    # copy), which is most of the cost of decoding a large fp32 delta.
    record = np.empty(shape, dtype=got_dtype)
    _read_into(stream, record.reshape(-1).view(np.uint8).data)
    return record


def _view_record(
    view: memoryview, offset: int, index: int, shape: tuple[int, ...], dtype: str
) -> tuple[np.ndarray, int]:
    """The record at ``offset`` as a read-only array over ``view``, and the offset after it."""
    head = io.BytesIO(view[offset : offset + _NPY_PREAMBLE + _NPY_HEADER_MAX])
    got_dtype = _read_record_header(head, index, shape, dtype)
    start = offset + head.tell()
    count = math.prod(shape)
    size = count * got_dtype.itemsize
    if start + size > len(view):
        raise WeightsRejected(
            f"weight stream ends early ({max(0, len(view) - start)} of {size} bytes)"
        )
    record = np.frombuffer(view, dtype=got_dtype, count=count, offset=start).reshape(shape)
    return record, start + size


def _read_into(stream: BinaryIO, buffer: memoryview) -> None:
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not got:
            raise WeightsRejected(f"weight stream ends early ({filled} of {len(buffer)} bytes)")
        filled += got


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise WeightsRejected(f"weight stream ends early ({len(data)} of {size} bytes)")
    return data
