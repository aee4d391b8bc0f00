"""The weight schema and the DAIG weight stream: round trips and every refusal."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from numpy.lib import format as npformat

from daig.weights.schema import TensorSpec, WeightSchema
from daig.weights.stream import (
    MAGIC,
    MAX_HEADER_JSON,
    WeightsRejected,
    decode_weights,
    encode_weights,
    load_weights,
    peek_schema_hash,
    save_weights,
)


@pytest.fixture
def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [
        rng.standard_normal((5, 3)).astype(np.float32),
        rng.standard_normal(3).astype(np.float32),
        rng.standard_normal((2, 2, 2)).astype(np.float64),
        np.array(0.5, dtype=np.float32),  # a scalar weight, shape ()
        rng.standard_normal(4).astype(np.float16),
    ]


@pytest.fixture
def schema(arrays: list[np.ndarray]) -> WeightSchema:
    return WeightSchema.of(arrays)


def stream(header: dict, records: list[np.ndarray]) -> bytes:
    """A weight stream with a hand-made header (to build malformed ones)."""
    encoded = json.dumps(header).encode()
    out = io.BytesIO()
    out.write(MAGIC + struct.pack("<I", len(encoded)) + encoded)
    for record in records:
        npformat.write_array(out, record, allow_pickle=False)
    return out.getvalue()


# --- schema ----------------------------------------------------------------------------------


def test_schema_describes_shapes_dtypes_and_sizes(schema: WeightSchema) -> None:
    assert schema.tensors[0] == TensorSpec((5, 3), "<f4")
    assert schema.tensors[3] == TensorSpec((), "<f4")
    assert len(schema) == 5
    assert schema.parameters == 15 + 3 + 8 + 1 + 4
    assert schema.nbytes == 15 * 4 + 3 * 4 + 8 * 8 + 4 + 4 * 2


def test_schema_json_round_trip_keeps_the_hash(schema: WeightSchema) -> None:
    again = WeightSchema.from_json(json.loads(json.dumps(schema.to_json())))
    assert again == schema
    assert again.hash == schema.hash


def test_schema_hash_changes_with_shape_dtype_and_order(arrays: list[np.ndarray]) -> None:
    base = WeightSchema.of(arrays).hash
    assert WeightSchema.of([arrays[0].T, *arrays[1:]]).hash != base
    assert WeightSchema.of([arrays[0].astype(np.float64), *arrays[1:]]).hash != base
    assert WeightSchema.of([arrays[1], arrays[0], *arrays[2:]]).hash != base


def test_schema_check_names_the_misfit(schema: WeightSchema, arrays: list[np.ndarray]) -> None:
    schema.check(arrays)
    with pytest.raises(ValueError, match="expected 5 weight tensors, got 4"):
        schema.check(arrays[:4])
    wrong = [*arrays[:2], arrays[2].astype(np.float32), *arrays[3:]]
    with pytest.raises(ValueError, match="weight tensor 2"):
        schema.check(wrong)


# --- round trips -----------------------------------------------------------------------------


def test_round_trip_is_exact(arrays: list[np.ndarray], schema: WeightSchema) -> None:
    decoded = decode_weights(encode_weights(arrays), schema)
    assert len(decoded) == len(arrays)
    for original, back in zip(arrays, decoded, strict=True):
        assert back.shape == original.shape
        assert back.dtype == original.dtype
        np.testing.assert_array_equal(back, original)


def test_decoded_arrays_are_writable(arrays: list[np.ndarray], schema: WeightSchema) -> None:
    decoded = decode_weights(encode_weights(arrays), schema)
    decoded[0] += 1  # no read-only buffer views leak out


def test_fortran_and_strided_arrays_round_trip() -> None:
    base = np.arange(30, dtype=np.float32).reshape(6, 5)
    fortran = np.asfortranarray(base[:5, :3])
    strided = np.arange(6, dtype=np.float32)[::2]
    arrays = [fortran, strided]
    decoded = decode_weights(encode_weights(arrays), WeightSchema.of(arrays))
    np.testing.assert_array_equal(decoded[0], fortran)
    np.testing.assert_array_equal(decoded[1], strided)


def test_file_round_trip_and_peek(arrays, schema, tmp_path) -> None:
    path = tmp_path / "weights.daig"
    save_weights(path, arrays)
    for original, back in zip(arrays, load_weights(path, schema), strict=True):
        np.testing.assert_array_equal(back, original)
    with open(path, "rb") as handle:
        assert peek_schema_hash(handle) == schema.hash


def test_unknown_codec_is_refused_when_writing(arrays) -> None:
    from daig.weights.stream import write_weights

    with pytest.raises(ValueError, match="codec"):
        write_weights(io.BytesIO(), arrays, codec="int4")


# --- refusals --------------------------------------------------------------------------------


def test_wrong_count_is_refused(arrays, schema) -> None:
    with pytest.raises(WeightsRejected, match="holds 4 tensors, model has 5"):
        decode_weights(encode_weights(arrays[:4]), schema)


def test_wrong_shape_is_refused(arrays, schema) -> None:
    arrays[1] = np.zeros(4, dtype=np.float32)
    with pytest.raises(WeightsRejected, match=r"weight tensor 1 is \(4,\)"):
        decode_weights(encode_weights(arrays), schema)


def test_wrong_dtype_is_refused(arrays, schema) -> None:
    arrays[0] = arrays[0].astype(np.float64)
    with pytest.raises(WeightsRejected, match="weight tensor 0.*<f8.*<f4"):
        decode_weights(encode_weights(arrays), schema)


def test_fortran_record_is_refused(arrays, schema) -> None:
    records = list(arrays)
    records[0] = np.asfortranarray(arrays[0])
    data = stream({"codec": "fp32", "count": 5, "schema_hash": schema.hash}, records)
    with pytest.raises(WeightsRejected, match="Fortran"):
        decode_weights(data, schema)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(arrays, schema, bad: float) -> None:
    arrays[2][1, 0, 1] = bad
    with pytest.raises(WeightsRejected, match="tensor 2 contains NaN or infinity"):
        decode_weights(encode_weights(arrays), schema)


def test_non_finite_values_can_be_allowed_explicitly(arrays, schema) -> None:
    from daig.weights.stream import read_weights

    arrays[0][0, 0] = np.nan
    decoded = read_weights(io.BytesIO(encode_weights(arrays)), schema, require_finite=False)
    assert np.isnan(decoded[0][0, 0])


def test_bad_magic_is_refused(arrays, schema) -> None:
    data = b"NOTDAIG!" + encode_weights(arrays)[len(MAGIC) :]
    with pytest.raises(WeightsRejected, match="bad magic"):
        decode_weights(data, schema)


def test_plain_npy_is_not_a_weight_stream(arrays, schema) -> None:
    out = io.BytesIO()
    np.save(out, arrays[0])
    with pytest.raises(WeightsRejected, match="bad magic"):
        decode_weights(out.getvalue(), schema)


@pytest.mark.parametrize("cut", [0, 4, 10, 20, 100, -1])
def test_truncated_stream_is_refused(arrays, schema, cut: int) -> None:
    data = encode_weights(arrays)
    with pytest.raises(WeightsRejected):
        decode_weights(data[:cut], schema)


def test_truncated_data_says_it_ends_early(arrays, schema) -> None:
    with pytest.raises(WeightsRejected, match="ends early"):
        decode_weights(encode_weights(arrays)[:-3], schema)


def test_trailing_bytes_are_refused(arrays, schema) -> None:
    with pytest.raises(WeightsRejected, match="trailing bytes"):
        decode_weights(encode_weights(arrays) + b"\x00", schema)


def test_oversized_header_is_refused_before_reading_it(schema) -> None:
    data = MAGIC + struct.pack("<I", MAX_HEADER_JSON + 1)  # no header bytes follow at all
    with pytest.raises(WeightsRejected, match="too long"):
        decode_weights(data, schema)


def test_header_claiming_gigabytes_is_refused(schema) -> None:
    data = MAGIC + struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(WeightsRejected, match="too long"):
        decode_weights(data, schema)


def test_non_json_header_is_refused(schema) -> None:
    data = MAGIC + struct.pack("<I", 5) + b"{oops"
    with pytest.raises(WeightsRejected, match="not JSON"):
        decode_weights(data, schema)


def test_non_object_header_is_refused(schema) -> None:
    data = MAGIC + struct.pack("<I", 2) + b"[]"
    with pytest.raises(WeightsRejected, match="not a JSON object"):
        decode_weights(data, schema)


def test_unknown_codec_in_stream_is_refused(arrays, schema) -> None:
    data = stream({"codec": "zip", "count": 5}, arrays)
    with pytest.raises(WeightsRejected, match="codec 'zip'"):
        decode_weights(data, schema)


def test_oversized_npy_record_header_is_refused(arrays, schema) -> None:
    head = stream({"codec": "fp32", "count": 5}, [])
    # A version 2.0 record whose header claims 1 MB.
    record = b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 20) + b" " * 64
    with pytest.raises(WeightsRejected, match="weight tensor 0: bad .npy record"):
        decode_weights(head + record, schema)


def test_object_record_is_refused_without_unpickling(schema) -> None:
    spec = WeightSchema((TensorSpec((2,), "<f4"),))
    out = io.BytesIO()
    npformat.write_array(out, np.array([1, "x"], dtype=object), allow_pickle=True)
    data = stream({"codec": "fp32", "count": 1}, []) + out.getvalue()
    with pytest.raises(WeightsRejected, match="weight tensor 0 is"):
        decode_weights(data, spec)


# --- compressed codecs ------------------------------------------------------------------------


@pytest.mark.parametrize("codec, tolerance", [("fp16", 1e-3), ("int8", 1.0 / 127)])
def test_compressed_codecs_round_trip_within_their_precision(codec: str, tolerance: float) -> None:
    rng = np.random.default_rng(1)
    arrays = [
        rng.standard_normal((33, 7)).astype(np.float32),
        rng.standard_normal(5).astype(np.float32),
        np.float32(0.25).reshape(()),
    ]
    schema = WeightSchema.of(arrays)
    back = decode_weights(encode_weights(arrays, codec=codec), schema)
    for original, got in zip(arrays, back, strict=True):
        assert got.shape == original.shape and got.dtype == original.dtype
        scale = np.abs(original).max()
        np.testing.assert_allclose(got, original, atol=tolerance * scale * 1.01)


def test_int8_is_about_four_times_smaller_even_for_a_small_model() -> None:
    rng = np.random.default_rng(2)
    arrays = [
        rng.standard_normal((64, 64)).astype(np.float32),
        rng.standard_normal(64).astype(np.float32),
        rng.standard_normal((64, 10)).astype(np.float32),
        rng.standard_normal(10).astype(np.float32),
    ]
    full = len(encode_weights(arrays, codec="fp32"))
    assert full / len(encode_weights(arrays, codec="int8")) >= 3.5
    assert full / len(encode_weights(arrays, codec="fp16")) >= 1.8


def test_a_compressed_stream_must_fit_the_codecs_record_layout() -> None:
    arrays = [np.ones((4, 4), np.float32)]
    data = encode_weights(arrays, codec="int8")
    other = WeightSchema.of([np.ones((4, 5), np.float32)])  # same block count, other model
    with pytest.raises(WeightsRejected, match="another model"):
        decode_weights(data, other)
    bigger = WeightSchema.of([np.ones((40, 40), np.float32)])  # other record shapes
    with pytest.raises(WeightsRejected, match="weight tensor 0 is"):
        decode_weights(data, bigger)


def test_zero_blocks_decode_to_zero() -> None:
    arrays = [np.zeros((300,), np.float32)]
    back = decode_weights(encode_weights(arrays, codec="int8"), WeightSchema.of(arrays))
    assert not back[0].any()
