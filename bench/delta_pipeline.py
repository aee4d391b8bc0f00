"""The aggregator's whole per-delta path, in process: K fp32 deltas of a 10.5M-parameter model
checked in a thread pool while one consumer thread folds them as they come.

Each delta is a weight stream of 42 MB (as providers upload it), held as ``bytes`` (as fetched
from the blob store), or stored in a ``LocalBlobStore`` in a temporary directory and fetched
by the checking thread either whole (``get_bytes``: read into new ``bytes``, what the handler
does today) or mapped (``get_buffer``: ``mmap``, no copy).
``services/aggregator/deltas.check_delta`` (sha256, stream checks, zero-copy decode,
finiteness and norm in one pass) runs in a ``ThreadPoolExecutor``; the calling thread waits
for checked deltas and folds every one that is ready with one ``WeightedMean.add_many`` (the
running mean of the round, float64); the last fold, with no check left to wait for, is split
over the pool's threads. MB/s = weight stream bytes / time from the first submit to the last
fold, best of N; the round's final division (``result``) is not part of the per-delta path
and is left out.

The process's CPU time per MB (all threads, least of N) is printed beside each row, with the
rate two idle cores would reach at that cost (2 s of CPU per second / CPU s per MB): on this
shared machine the wall time mostly measures the neighbours. Per-stage rates (one thread, each
stage alone, best of N) say where the time goes.

    .venv/bin/python -m bench.delta_pipeline --deltas 8,32 --workers 2,4 --repeats 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daig.blobstore.local import LocalBlobStore
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights_view, encode_weights, max_stream_bytes
from daig_aggregator.deltas import CheckedDelta, check_delta, checked_norm
from daig_aggregator.logic import WeightedMean

BIG_MODEL = [(2048, 4096), (4096,), (4096, 512), (512,), (512, 10), (10,)]
SOURCES = ("memory", "blob get_bytes", "blob get_buffer")
SAMPLES = 100
Buffer = bytes | mmap.mmap


@dataclass
class Deltas:
    """K weight streams of one model, in memory and in a local blob store."""

    streams: list[bytes]
    hashes: list[str]
    blobs: LocalBlobStore
    schema: WeightSchema

    def load(self, source: str, index: int) -> Buffer:
        if source == "memory":
            return self.streams[index]
        if source == "blob get_bytes":
            return self.blobs.get_bytes(_key(index))
        return self.blobs.get_buffer(_key(index))

    @property
    def megabytes(self) -> float:
        return sum(len(s) for s in self.streams) / 1e6


def _key(index: int) -> str:
    return f"bench/results/delta-{index}"


def make_deltas(count: int, directory: Path, seed: int = 0) -> Deltas:
    """``count`` random fp32 deltas of ``BIG_MODEL``, encoded, and stored in ``directory``."""
    rng = np.random.default_rng(seed)
    blobs = LocalBlobStore(directory, secret="bench", base_url="http://localhost")
    streams = []
    schema = None
    for index in range(count):
        delta = [rng.standard_normal(s, dtype=np.float32) * np.float32(1e-3) for s in BIG_MODEL]
        schema = schema or WeightSchema.of(delta)
        streams.append(encode_weights(delta))
        blobs.put_bytes(_key(index), streams[-1])
    assert schema is not None
    return Deltas(streams, [hashlib.sha256(s).hexdigest() for s in streams], blobs, schema)


def _load_and_check(deltas: Deltas, source: str, index: int) -> CheckedDelta:
    schema = deltas.schema
    data = deltas.load(source, index)
    return check_delta(
        data, sha256=deltas.hashes[index], schema=schema, max_bytes=max_stream_bytes(schema)
    )


def pipeline_seconds(
    pool: ThreadPoolExecutor, deltas: Deltas, count: int, source: str
) -> tuple[float, float]:
    """Check ``count`` deltas in ``pool``; fold each as soon as it is checked (ready ones
    together; the last ones split over the then idle pool). Seconds from the first submit to
    the last fold, and CPU seconds of the process (all threads) meanwhile."""
    mean = WeightedMean()
    cpu = time.process_time()
    began = time.perf_counter()
    pending: set[Future[CheckedDelta]] = {
        pool.submit(_load_and_check, deltas, source, index) for index in range(count)
    }
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        # The last fold has the pool to itself: split it over the pool's threads.
        mean.add_many(
            [(future.result().arrays, SAMPLES) for future in done],
            executor=None if pending else pool,
        )
    elapsed = time.perf_counter() - began
    assert mean.samples == count * SAMPLES
    return elapsed, time.process_time() - cpu


def pipeline_rates(
    deltas: Deltas, counts: list[int], workers: list[int], repeats: int
) -> dict[str, dict[str, float]]:
    """For every K, source and pool size: MB/s of the whole pipeline (best of ``repeats``), and
    its CPU cost, ms per MB (least of ``repeats``; on a loaded machine the wall time says more
    about the neighbours than the CPU time does)."""
    rows = {}
    for count in counts:
        megabytes = sum(len(s) for s in deltas.streams[:count]) / 1e6
        for source in SOURCES:
            for size in workers:
                with ThreadPoolExecutor(size) as pool:
                    runs = [pipeline_seconds(pool, deltas, count, source) for _ in range(repeats)]
                rows[f"K={count} {source}, {size} workers"] = {
                    "mb_s": megabytes / min(wall for wall, _ in runs),
                    "cpu_ms_per_mb": 1000 * min(cpu for _, cpu in runs) / megabytes,
                }
    return rows


def _best_rate(megabytes: float, repeats: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return megabytes / best


def stage_rates(deltas: Deltas, count: int, repeats: int) -> dict[str, float]:
    """MB/s of each stage alone on one thread (folds: the sums of a fresh mean)."""
    streams, schema = deltas.streams[:count], deltas.schema
    megabytes = sum(len(s) for s in streams) / 1e6
    views = [decode_weights_view(s, schema) for s in streams]
    pairs = [(v, SAMPLES) for v in views]

    def mapped_sha256() -> None:
        for index in range(count):
            hashlib.sha256(deltas.load("blob get_buffer", index)).digest()

    def fold(many: bool, pool: ThreadPoolExecutor | None = None) -> None:
        mean = WeightedMean()
        for start in range(0, count, count if many else 1):
            mean.add_many(pairs[start : start + (count if many else 1)], executor=pool)

    stages: dict[str, Callable[[], object]] = {
        "fetch (blob get_bytes)": lambda: [deltas.load("blob get_bytes", i) for i in range(count)],
        "sha256 (bytes)": lambda: [hashlib.sha256(s).digest() for s in streams],
        "sha256 (blob get_buffer: mmap)": mapped_sha256,
        "decode (views)": lambda: [
            decode_weights_view(s, schema, require_finite=False) for s in streams
        ],
        "norm and finiteness": lambda: [checked_norm(v) for v in views],
        "check_delta (bytes)": lambda: [_load_and_check(deltas, "memory", i) for i in range(count)],
        "fold (add, one at a time)": lambda: fold(False),
        f"fold (add_many of {count})": lambda: fold(True),
    }
    rates = {name: _best_rate(megabytes, repeats, work) for name, work in stages.items()}
    with ThreadPoolExecutor(2) as pool:
        rates["fold (add, 2-thread executor)"] = _best_rate(
            megabytes, repeats, lambda: fold(False, pool)
        )
    return rates


def measure(counts: list[int], workers: list[int], repeats: int) -> dict[str, object]:
    """Pipeline and stage rates, with the load average before and after."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="daig-pipeline-") as directory:
        deltas = make_deltas(max(counts), Path(directory))
        stages = stage_rates(deltas, min(counts), repeats)
        pipeline = pipeline_rates(deltas, counts, workers, repeats)
    return {
        "pipeline_mb_s": pipeline,
        "stage_mb_s": stages,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def report(result: dict[str, object], repeats: int) -> str:
    """The measurement as a table, with each stage's CPU time per MB."""
    pipeline = result["pipeline_mb_s"]
    stages = result["stage_mb_s"]
    assert isinstance(pipeline, dict) and isinstance(stages, dict)
    before, after = result["load_average_before"], result["load_average_after"]
    assert isinstance(before, tuple) and isinstance(after, tuple)
    lines = [
        f"whole per-delta pipeline, 10.5M-parameter fp32 deltas, best of {repeats} (load "
        f"average {before[0]:.2f} {before[1]:.2f} -> {after[0]:.2f} {after[1]:.2f})",
        f"  {'':<34}{'MB/s':>8}{'CPU ms/MB':>11}{'2 idle cores':>14}",
        *(
            f"  {name:<34}{row['mb_s']:>8.0f}{row['cpu_ms_per_mb']:>11.2f}"
            f"{2000 / row['cpu_ms_per_mb']:>14.0f}"
            for name, row in pipeline.items()
        ),
        "stages alone, one thread (MB/s, ms per MB)",
        *(f"  {name:<34}{rate:>8.0f}{1000 / rate:>8.2f}" for name, rate in stages.items()),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deltas", default="8,32", help="K values, comma-separated")
    parser.add_argument("--workers", default="2,4", help="pool sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    counts = [int(k) for k in args.deltas.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    result = measure(counts, workers, args.repeats)
    print(report(result, args.repeats))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
