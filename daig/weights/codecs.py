"""Delta encodings, chosen per project: ``fp32`` (exact), ``fp16`` and ``int8`` (block-wise).

A codec turns a list of tensors into a few arrays ("records") for the weight stream and back,
and says in advance exactly which record shapes and dtypes a given model's stream must hold,
so the reader can refuse anything else before reading a byte of data. ``fp16`` and ``int8``
flatten all tensors into one vector (two records at most, whatever the layer count), so their
saving holds for small models too; ``int8`` stores one float32 scale per block of
``BLOCK`` values (max-abs / 127), about 3.9x smaller than fp32.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from daig.weights.schema import NDArrays, WeightSchema

RecordSpec = tuple[tuple[int, ...], str]  # (shape, numpy dtype string)


class Codec(ABC):
    name: str

    @abstractmethod
    def encode(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The records that represent ``arrays``."""

    @abstractmethod
    def record_specs(self, schema: WeightSchema) -> list[RecordSpec]:
        """Exactly the records a stream for ``schema`` must contain."""

    @abstractmethod
    def decode(self, records: list[np.ndarray], schema: WeightSchema) -> NDArrays:
        """Tensors with the schema's shapes and dtypes."""


class Full(Codec):
    """Every tensor as it is: exact, 4 bytes per float32 parameter."""

    name = "fp32"

    def encode(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        # np.asarray(order="C") keeps a scalar weight scalar (ascontiguousarray would not).
        return [np.asarray(a, order="C") for a in arrays]

    def record_specs(self, schema: WeightSchema) -> list[RecordSpec]:
        return [(t.shape, t.dtype) for t in schema.tensors]

    def decode(self, records: list[np.ndarray], schema: WeightSchema) -> NDArrays:
        return records


def _flat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])


def _unflat(flat: np.ndarray, schema: WeightSchema) -> NDArrays:
    # ``flat`` is a fresh array the caller owns: float32 tensors are views into it, not copies.
    tensors, offset = [], 0
    for spec in schema.tensors:
        piece = flat[offset : offset + spec.size].reshape(spec.shape)
        tensors.append(piece.astype(spec.dtype, copy=False))
        offset += spec.size
    return tensors


class Half(Codec):
    """All parameters as float16 in one record: 2 bytes each."""

    name = "fp16"

    def encode(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [_flat(arrays).astype(np.float16)]

    def record_specs(self, schema: WeightSchema) -> list[RecordSpec]:
        return [((schema.parameters,), "<f2")]

    def decode(self, records: list[np.ndarray], schema: WeightSchema) -> NDArrays:
        return _unflat(records[0].astype(np.float32), schema)


class BlockInt8(Codec):
    """All parameters as int8 in blocks of ``BLOCK``, each with its own float32 scale."""

    name = "int8"
    BLOCK = 128

    def _blocks(self, parameters: int) -> int:
        return max(1, math.ceil(parameters / self.BLOCK))

    def encode(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        flat = _flat(arrays)
        blocks = self._blocks(flat.size)
        padded = np.zeros(blocks * self.BLOCK, dtype=np.float32)
        padded[: flat.size] = flat
        grid = padded.reshape(blocks, self.BLOCK)
        scales = (np.abs(grid).max(axis=1) / 127.0).astype(np.float32)
        safe = np.where(scales > 0, scales, 1.0)[:, None]
        quantized = np.clip(np.rint(grid / safe), -127, 127).astype(np.int8)
        return [scales, quantized.ravel()]

    def record_specs(self, schema: WeightSchema) -> list[RecordSpec]:
        blocks = self._blocks(schema.parameters)
        return [((blocks,), "<f4"), ((blocks * self.BLOCK,), "|i1")]

    def decode(self, records: list[np.ndarray], schema: WeightSchema) -> NDArrays:
        scales, quantized = records
        grid = quantized.reshape(scales.size, self.BLOCK).astype(np.float32) * scales[:, None]
        return _unflat(grid.ravel()[: schema.parameters], schema)


CODECS: dict[str, Codec] = {codec.name: codec for codec in (Full(), Half(), BlockInt8())}
CODEC_NAMES = tuple(CODECS)


def get_codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown weight codec {name!r}; use one of {', '.join(CODECS)}") from None
