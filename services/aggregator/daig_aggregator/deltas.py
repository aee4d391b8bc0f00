"""Checking one result's delta before it is recorded: size, sha256, stream, values, norm.

Pure (no database, no broker) and thread-safe, so the aggregator can check many results at
once in a thread pool: the heavy parts release the GIL (hashlib on large buffers, numpy's
loops), and nothing is copied that need not be. An ``fp32`` delta's tensors are read-only
views into the bytes given to ``check_delta``: the caller keeps those bytes alive, unchanged,
for as long as it uses the tensors (folding them, or computing a mean with them).

Finiteness is checked in the same pass as the norm: the sum of squares of a tensor, computed
in float64, is finite exactly when all its values are (squares of finite float32 or float16
values cannot overflow a float64), so the explicit per-value test runs only for a tensor
whose sum is not finite, to name it. The norm-outlier decision needs the database: the
handler takes it with ``CheckedDelta.norm``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daig.db.models import RejectReason
from daig.weights.schema import NDArrays, WeightSchema
from daig.weights.stream import BufferLike, WeightsRejected, decode_weights_view

# Elements per block of the sum of squares: a 1 MiB float64 scratch, in the CPU's cache.
NORM_BLOCK = 131072


class DeltaRejected(Exception):
    """A delta that must not be accepted; ``reason`` is recorded, ``detail`` explains it."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CheckedDelta:
    """A delta that passed every check: its tensors (schema order), L2 norm and stream size."""

    arrays: NDArrays
    norm: float
    nbytes: int


def check_delta(
    data: BufferLike, *, sha256: str, schema: WeightSchema, max_bytes: int
) -> CheckedDelta:
    """Check a delta's weight stream as the result announced it, and measure its norm.

    Refuses (``DeltaRejected``), in this order: a stream over ``max_bytes``
    (``bad_delta``); one whose sha256 is not ``sha256`` (``checksum_mismatch``); a stream
    that is malformed or does not fit ``schema`` exactly (``bad_delta``: magic, header,
    codec, tensor count, every record's shape and dtype, truncation, trailing bytes, schema
    hash); a tensor holding NaN or infinity (``bad_delta``, naming the tensor).
    """
    size = memoryview(data).nbytes
    if size > max_bytes:
        raise DeltaRejected(RejectReason.BAD_DELTA, f"the delta is {size} bytes, too large")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DeltaRejected(RejectReason.CHECKSUM_MISMATCH, "the delta's sha256 does not match")
    try:
        # Finiteness is checked below, with the norm, in one pass over the values.
        arrays = decode_weights_view(data, schema, require_finite=False)
    except WeightsRejected as exc:
        raise DeltaRejected(RejectReason.BAD_DELTA, str(exc)) from exc
    return CheckedDelta(arrays=arrays, norm=checked_norm(arrays), nbytes=size)


def checked_norm(arrays: Sequence[np.ndarray]) -> float:
    """L2 norm of all tensors as one vector (as ``logic.delta_norm``), refusing NaN and inf.

    Raises ``DeltaRejected`` (``bad_delta``) naming the first tensor with a non-finite value.
    A float64 tensor of finite values so large that their squares overflow has norm inf,
    as with ``logic.delta_norm``.
    """
    scratch = np.empty(NORM_BLOCK, dtype=np.float64)
    total = 0.0
    for index, tensor in enumerate(arrays):
        squares = _sum_of_squares(np.asarray(tensor).reshape(-1), scratch)
        if not math.isfinite(squares):
            bad = int(np.count_nonzero(~np.isfinite(tensor)))
            if bad:
                raise DeltaRejected(
                    RejectReason.BAD_DELTA,
                    f"weight tensor {index} contains NaN or infinity "
                    f"({bad} of {np.size(tensor)} values)",
                )
        total += squares
    return math.sqrt(total)


def _sum_of_squares(flat: np.ndarray, scratch: np.ndarray) -> float:
    """Sum of squares of ``flat`` in float64, a cache-sized block at a time (no BLAS: its
    threads would fight the caller's pool)."""
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite sums are handled above
        for start in range(0, flat.size, NORM_BLOCK):
            block = flat[start : start + NORM_BLOCK]
            squares = scratch[: block.size]
            np.copyto(squares, block)  # widen first: float32 squares overflow above 1.8e19
            np.multiply(squares, squares, out=squares)
            total += float(np.add.reduce(squares))
    return total
