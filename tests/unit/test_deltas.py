"""Checking a result's delta off the handler's thread: same verdicts as the old path, no copies."""

from __future__ import annotations

import hashlib
import io
import math
import mmap
from pathlib import Path

import numpy as np
import pytest

from daig.db.models import RejectReason
from daig.weights.schema import WeightSchema
from daig.weights.stream import (
    MAGIC,
    WeightsRejected,
    decode_weights,
    decode_weights_view,
    max_stream_bytes,
)
from daig.weights.stream import encode_weights as encode
from daig_aggregator.deltas import CheckedDelta, DeltaRejected, check_delta
from daig_aggregator.logic import delta_norm


@pytest.fixture
def arrays() -> list[np.ndarray]:
    """A float32 model (what fp16/int8 streams carry); a block-sized tensor spans norm blocks."""
    rng = np.random.default_rng(5)
    return [
        rng.standard_normal((300, 500)).astype(np.float32),
        rng.standard_normal(7).astype(np.float32),
        np.array(0.5, dtype=np.float32),  # a scalar weight, shape ()
        np.zeros((0, 3), np.float32),
        rng.standard_normal((3, 4)).astype(np.float32) * np.float32(1e-3),
    ]


@pytest.fixture
def schema(arrays: list[np.ndarray]) -> WeightSchema:
    return WeightSchema.of(arrays)


def check(data: bytes, schema: WeightSchema, **changes: object) -> CheckedDelta:
    """``check_delta`` with the data's own sha256 and the schema's size limit, unless changed."""
    options: dict[str, object] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "schema": schema,
        "max_bytes": max_stream_bytes(schema),
    }
    options.update(changes)
    return check_delta(data, **options)  # type: ignore[arg-type]


def rejected(data: bytes, schema: WeightSchema, **changes: object) -> DeltaRejected:
    with pytest.raises(DeltaRejected) as caught:
        check(data, schema, **changes)
    return caught.value


# --- agreement with the old path (decode_weights + logic.delta_norm) --------------------------


@pytest.mark.parametrize("codec", ["fp32", "fp16", "int8"])
def test_agrees_with_decode_and_delta_norm(arrays, schema, codec: str) -> None:
    data = encode(arrays, codec=codec)
    checked = check(data, schema)
    old = decode_weights(data, schema)
    assert checked.nbytes == len(data)
    assert len(checked.arrays) == len(old)
    for got, expected in zip(checked.arrays, old, strict=True):
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    assert checked.norm == pytest.approx(delta_norm(old), rel=1e-12)


def test_mixed_dtypes_agree_too() -> None:
    rng = np.random.default_rng(6)
    arrays = [
        rng.standard_normal((40, 3)).astype(np.float64),
        rng.standard_normal(9).astype(np.float16),
        rng.standard_normal(5).astype(np.float32),
    ]
    schema = WeightSchema.of(arrays)
    checked = check(encode(arrays), schema)
    assert [a.dtype for a in checked.arrays] == [a.dtype for a in arrays]
    assert checked.norm == pytest.approx(delta_norm(arrays), rel=1e-12)


def test_fp32_tensors_are_read_only_views_of_the_bytes(arrays, schema) -> None:
    data = encode(arrays)
    checked = check(data, schema)
    holder = np.frombuffer(data, dtype=np.uint8)
    for tensor in checked.arrays:
        assert not tensor.flags.writeable
        assert tensor.size == 0 or np.shares_memory(tensor, holder)


@pytest.mark.parametrize("wrap", [memoryview, bytearray])
def test_other_buffers_are_accepted(arrays, schema, wrap) -> None:
    data = encode(arrays)
    checked = check_delta(
        wrap(data),
        sha256=hashlib.sha256(data).hexdigest(),
        schema=schema,
        max_bytes=max_stream_bytes(schema),
    )
    np.testing.assert_array_equal(checked.arrays[0], arrays[0])


def test_a_mapped_file_is_checked_in_place(arrays, schema, tmp_path: Path) -> None:
    path = tmp_path / "delta.daig"
    path.write_bytes(encode(arrays))
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    checked = check_delta(
        mapped,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        schema=schema,
        max_bytes=max_stream_bytes(schema),
    )
    np.testing.assert_array_equal(checked.arrays[4], arrays[4])


def test_huge_finite_float32_values_are_not_mistaken_for_infinity(arrays, schema) -> None:
    arrays[0][:] = np.float32(3e38)  # squares overflow float32, not float64
    checked = check(encode(arrays), schema)
    assert math.isfinite(checked.norm)
    assert checked.norm == pytest.approx(delta_norm(arrays), rel=1e-12)


def test_float64_values_whose_squares_overflow_have_an_infinite_norm_as_before() -> None:
    arrays = [np.array([1e200, 1.0])]
    checked = check(encode(arrays), WeightSchema.of(arrays))
    with np.errstate(over="ignore"):
        assert checked.norm == delta_norm(arrays) == math.inf


# --- refusals ---------------------------------------------------------------------------------


def test_wrong_sha256_is_a_checksum_mismatch(arrays, schema) -> None:
    error = rejected(encode(arrays), schema, sha256="0" * 64)
    assert error.reason == RejectReason.CHECKSUM_MISMATCH
    assert "sha256 does not match" in error.detail


def test_oversize_is_refused_before_hashing(arrays, schema) -> None:
    data = encode(arrays)
    error = rejected(data, schema, max_bytes=len(data) - 1, sha256="0" * 64)
    assert error.reason == RejectReason.BAD_DELTA
    assert error.detail == f"the delta is {len(data)} bytes, too large"
    assert check(data, schema, max_bytes=len(data)).nbytes == len(data)


def test_the_size_limit_leaves_room_for_headers_only(schema) -> None:
    assert schema.nbytes < max_stream_bytes(schema) < schema.nbytes + 128 * 1024


@pytest.mark.parametrize("cut", [0, 4, 10, 20, 100, 5000, -1])
def test_truncated_stream_is_a_bad_delta(arrays, schema, cut: int) -> None:
    error = rejected(encode(arrays)[:cut], schema)
    assert error.reason == RejectReason.BAD_DELTA


def test_truncated_data_says_it_ends_early(arrays, schema) -> None:
    assert "ends early" in rejected(encode(arrays)[:-3], schema).detail


def test_trailing_bytes_are_a_bad_delta(arrays, schema) -> None:
    error = rejected(encode(arrays) + b"\x00", schema)
    assert error.reason == RejectReason.BAD_DELTA
    assert "trailing bytes" in error.detail


@pytest.mark.parametrize("index", [0, 1, 2, 4])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_naming_the_tensor(arrays, schema, index, bad) -> None:
    arrays[index].flat[-1] = bad
    error = rejected(encode(arrays), schema)
    assert error.reason == RejectReason.BAD_DELTA
    assert f"weight tensor {index} contains NaN or infinity (1 of " in error.detail


@pytest.mark.parametrize("codec", ["fp16", "int8"])
def test_nan_in_a_compressed_stream_names_the_tensor(arrays, schema, codec: str) -> None:
    # Flat element 150019: its int8 block (150016-150143) holds only tensor 4's values (a NaN
    # spoils its whole block's scale).
    arrays[4][2, 3] = np.nan
    with np.errstate(invalid="ignore"):  # int8 encoding of a NaN
        data = encode(arrays, codec=codec)
    error = rejected(data, schema)
    assert error.reason == RejectReason.BAD_DELTA
    assert "weight tensor 4 contains NaN or infinity" in error.detail


def test_a_stream_of_another_model_is_a_bad_delta(arrays, schema) -> None:
    other = [np.zeros((500, 300), np.float32), *arrays[1:]]
    error = rejected(encode(other), schema)
    assert error.reason == RejectReason.BAD_DELTA
    assert "weight tensor 0 is (500, 300)" in error.detail
    assert "holds 4 tensors" in rejected(encode(arrays[:4]), schema).detail


def test_an_int8_stream_of_a_similar_model_is_refused_by_its_schema_hash() -> None:
    data = encode([np.ones((4, 4), np.float32)], codec="int8")
    error = rejected(data, WeightSchema.of([np.ones((4, 5), np.float32)]))
    assert error.reason == RejectReason.BAD_DELTA
    assert "another model" in error.detail


def test_bad_magic_is_a_bad_delta(arrays, schema) -> None:
    error = rejected(b"NOTDAIG!" + encode(arrays)[len(MAGIC) :], schema)
    assert error.reason == RejectReason.BAD_DELTA
    assert "bad magic" in error.detail


# --- the zero-copy decoder refuses exactly what the copying one refuses ----------------------


def _malformed(arrays: list[np.ndarray]) -> list[bytes]:
    good = encode(arrays)
    plain = io.BytesIO()
    np.save(plain, arrays[0])
    return [
        good[:-1],
        good[:-3000],
        good[:200],
        good + b"\x00",
        b"NOTDAIG!" + good[8:],
        plain.getvalue(),
        encode(arrays[:4]),
        encode([arrays[0].astype(np.float64), *arrays[1:]]),
        encode([arrays[0].T.copy(), *arrays[1:]]),
        encode([*arrays[:4], arrays[4] * np.float32(np.inf)]),
    ]


def test_view_decoder_refuses_like_decode_weights(arrays, schema) -> None:
    for data in _malformed(arrays):
        with pytest.raises(WeightsRejected) as copying:
            decode_weights(data, schema)
        with pytest.raises(WeightsRejected) as viewing:
            decode_weights_view(data, schema)
        assert str(viewing.value) == str(copying.value)
