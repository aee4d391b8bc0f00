"""The shape and dtype of every weight tensor of a model, and a hash that names them.

Two weight lists can only be added if their schemas are equal; results carry the schema hash
so that an update computed for another model can never be averaged in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NDArrays = list[np.ndarray]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass(frozen=True, slots=True)
class WeightSchema:
    """Ordered tensor specs of a model's weights (Keras legacy-h5 order)."""

    tensors: tuple[TensorSpec, ...]

    @classmethod
    def of(cls, arrays: Sequence[np.ndarray]) -> WeightSchema:
        return cls(tuple(TensorSpec(tuple(a.shape), np.dtype(a.dtype).str) for a in arrays))

    @classmethod
    def from_json(cls, data: list[list[object]]) -> WeightSchema:
        specs = []
        for shape, dtype in data:
            assert isinstance(shape, list)
            specs.append(TensorSpec(tuple(int(s) for s in shape), str(dtype)))
        return cls(tuple(specs))

    def to_json(self) -> list[list[object]]:
        return [[list(t.shape), t.dtype] for t in self.tensors]

    @property
    def hash(self) -> str:
        encoded = json.dumps(self.to_json(), separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()

    @property
    def parameters(self) -> int:
        return sum(t.size for t in self.tensors)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def check(self, arrays: Sequence[np.ndarray]) -> None:
        """Raise ``ValueError`` naming the first tensor that does not fit this schema."""
        if len(arrays) != len(self.tensors):
            raise ValueError(f"expected {len(self.tensors)} weight tensors, got {len(arrays)}")
        for index, (array, spec) in enumerate(zip(arrays, self.tensors, strict=True)):
            if tuple(array.shape) != spec.shape or np.dtype(array.dtype).str != spec.dtype:
                raise ValueError(
                    f"weight tensor {index} has shape {tuple(array.shape)} dtype "
                    f"{np.dtype(array.dtype).str}; the model needs {spec.shape} {spec.dtype}"
                )
