"""Checking one delta before any transaction: size, sha256, stream format, schema, finiteness.

Pure and thread-safe: the aggregator runs it in a thread pool, outside any database lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from daig.db.models import RejectReason
from daig.weights.codec import WeightsRejected, decode_weights
from daig.weights.schema import NDArrays, WeightSchema
from services.aggregator.logic import delta_norm


class DeltaRejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CheckedDelta:
    arrays: NDArrays
    norm: float
    nbytes: int


def check_delta(
    data: bytes | memoryview, *, sha256: str, schema: WeightSchema, max_bytes: int
) -> CheckedDelta:
    """The decoded delta and its L2 norm, or ``DeltaRejected`` saying what is wrong."""
    if len(data) > max_bytes:
        raise DeltaRejected(RejectReason.BAD_DELTA, f"the delta is {len(data)} bytes, too large")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DeltaRejected(RejectReason.CHECKSUM_MISMATCH, "the delta's sha256 does not match")
    try:
        arrays = decode_weights(bytes(data), schema)
    except WeightsRejected as exc:
        raise DeltaRejected(RejectReason.BAD_DELTA, str(exc)) from exc
    return CheckedDelta(arrays, delta_norm(arrays), len(data))
