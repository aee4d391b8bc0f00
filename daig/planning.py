"""Round planning for K-batch synchronous SGD: which rows form a shard, which shards a round.

Pure functions, no I/O. With N rows and T shards, shard *i* is rows ``[i*N//T, (i+1)*N//T)``;
round *r* trains the K shards ``(r*K + j) mod T`` for ``j < K``; one pass over the data is
``ceil(T/K)`` rounds and a project runs ``passes`` of them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass


def shard_rows(shard: int, total_rows: int, total_shards: int) -> tuple[int, int]:
    """Half-open row range ``[start, stop)`` of ``shard``."""
    if not 0 <= shard < total_shards:
        raise ValueError(f"shard {shard} is outside 0..{total_shards - 1}")
    return shard * total_rows // total_shards, (shard + 1) * total_rows // total_shards


def task_seed(project_id: uuid.UUID, round_index: int, shard: int) -> int:
    """The random seed of task (project, round, shard): every provider trains it the same way.

    Shuffling, dropout and any other randomness of the task's training start from it, so two
    honest runs of one task agree (what replication compares).
    """
    digest = hashlib.sha256(f"{project_id}:{round_index}:{shard}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def rounds_per_pass(total_shards: int, task_size: int) -> int:
    return -(-total_shards // task_size)


def total_rounds(total_shards: int, task_size: int, passes: int) -> int:
    return rounds_per_pass(total_shards, task_size) * passes


def round_shards(round_index: int, total_shards: int, task_size: int) -> list[int]:
    """The K shard indices trained in ``round_index`` (slot order)."""
    return [(round_index * task_size + slot) % total_shards for slot in range(task_size)]


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole schedule of a project, derived from its sizes."""

    total_rows: int
    total_shards: int
    task_size: int
    passes: int

    @property
    def rounds(self) -> int:
        return total_rounds(self.total_shards, self.task_size, self.passes)

    def shards(self, round_index: int) -> list[int]:
        if not 0 <= round_index < self.rounds:
            raise ValueError(f"round {round_index} is outside 0..{self.rounds - 1}")
        return round_shards(round_index, self.total_shards, self.task_size)

    def rows(self, shard: int) -> tuple[int, int]:
        return shard_rows(shard, self.total_rows, self.total_shards)

    def smallest_shard(self) -> int:
        return self.total_rows // self.total_shards
