"""Aggregator throughput: deltas of a ~10M-parameter model folded per second, and results per
second for a tiny model through the real broker and aggregator process.

Part 1 (in process, the aggregator's own code): K deltas of a 10.5M-parameter model (42 MB in
fp32) decoded from their weight streams and folded into the running mean
(``services/aggregator/logic.WeightedMean``), per codec; and the robust strategies for
comparison. MB/s counts fp32-equivalent delta bytes folded.

The "validate+fold" row adds what the aggregator does to every accepted fp32 delta before
folding it: sha256 of the stream, decoding (header checks, finiteness) and the update norm,
one delta after the other on one thread (the handler's old path).

The "whole per-delta pipeline" rows (``bench/delta_pipeline.py``) run that path as the
batching handler does: K=8 and K=32 fp32 weight streams (in memory as fetched from the blob
store, or in files read whole or mapped) checked by ``services/aggregator/deltas.check_delta``
in a thread pool of 2 and 4 workers while the calling thread folds each checked delta as soon
as it is ready; MB/s of weight stream bytes, best of N; with each stage's rate alone.

Part 2 (real system): a running cluster, a tiny-model project with K=200 tasks claimed by one
provider account; 200 results published at once (inline deltas) through that account's own
broker credentials; results/s = how fast the aggregator process records them (one round
closes at the 200th).

Part 3 (real system, big model): a 10.5M-parameter MLP (digits, 140,000 hidden units; 42 MB
fp32 deltas) with K=8 tasks; 8 fp32 deltas uploaded to their presigned URLs, then the 8 results
published at once; MB/s = delta bytes / time from the first publish until the aggregator
process recorded the 8th result (and until the round closed: new weights written).

    .venv/bin/python -m bench.aggregator_throughput
    .venv/bin/python -m bench.aggregator_throughput --in-process-only   # part 1, ~2 min
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import delta_pipeline
from daig.client import DaigClient
from daig.contract.http import ClaimGrant
from daig.weights.codecs import CODEC_NAMES
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights, encode_weights
from daig_aggregator.logic import WeightedMean, delta_norm
from daig_aggregator.strategies import make_strategy

BIG_MODEL = [(2048, 4096), (4096,), (4096, 512), (512,), (512, 10), (10,)]


def fold_throughput(deltas_count: int, repeats: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    deltas = [
        [(rng.standard_normal(s) * 1e-3).astype(np.float32) for s in BIG_MODEL]
        for _ in range(deltas_count)
    ]
    schema = WeightSchema.of(deltas[0])
    megabytes = schema.nbytes * deltas_count / 1e6
    out: dict[str, dict[str, float]] = {}
    for codec in CODEC_NAMES:
        streams = [encode_weights(d, codec=codec) for d in deltas]
        best_fold, best_total = float("inf"), float("inf")
        for _ in range(repeats):
            decoded_at = time.perf_counter()
            decoded = [decode_weights(s, schema) for s in streams]
            folded_at = time.perf_counter()
            mean = WeightedMean()
            for delta in decoded:
                mean.add(delta, 100)
            mean.result()
            done = time.perf_counter()
            best_fold = min(best_fold, done - folded_at)
            best_total = min(best_total, done - decoded_at)
        out[codec] = {
            "fold_mb_s": megabytes / best_fold,
            "decode_and_fold_mb_s": megabytes / best_total,
        }
    streams = [encode_weights(d) for d in deltas]
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        mean = WeightedMean()
        for stream in streams:
            hashlib.sha256(stream).hexdigest()
            delta = decode_weights(stream, schema)
            delta_norm(delta)
            mean.add(delta, 100)
        mean.result()
        best = min(best, time.perf_counter() - began)
    out["fp32 validate+fold"] = {"fold_mb_s": megabytes / best}
    for name in ("median", "trimmed_mean", "clipped_mean"):
        strategy = make_strategy(name)
        began = time.perf_counter()
        strategy.combine([(d, 100) for d in deltas])
        out[f"strategy:{name}"] = {"fold_mb_s": megabytes / (time.perf_counter() - began)}
    return out


def _claim_round(channel: Any, provider: DaigClient, tasks: int) -> list[ClaimGrant]:
    """Claim ``tasks`` tasks of round 0 as their messages arrive (up to 2 minutes).

    Claiming as they come matters: a claim refills the project's dispatch window, so only a
    window's worth of messages is queued at a time; a task nobody claimed in time is published
    again, so the same task may arrive twice.
    """
    grants: dict[str, ClaimGrant] = {}
    deadline = time.monotonic() + 120
    while len(grants) < tasks and time.monotonic() < deadline:
        method, _, body = channel.basic_get("daig.tasks", auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        task_id = json.loads(body)["task_id"]
        if task_id not in grants:
            grants[task_id] = provider.claim(task_id, "bench")
    return list(grants.values())


def results_per_second(tasks: int, directory: Path) -> dict[str, float]:
    from bench.harness import bench_cluster
    from bench.provider_broker import ProviderBroker
    from daig.contract.messages import TrainingStatus, TrainResult
    from daig.examples import write_digits
    from daig.hyperparams import Hyperparameters
    from daig.weights.h5weights import read_weights

    files = write_digits(directory)
    weights = read_weights(files.model)
    with bench_cluster(scheduler_tick_seconds="0.5") as cluster:
        requestor = cluster.client("requestor")
        project = requestor.create_project(
            "throughput",
            Hyperparameters(epochs=1, total_tasks=tasks, task_size=tasks, max_contributors=tasks),
        )
        for kind in ("model", "data", "labels"):
            requestor.upload_file(project.id, kind, getattr(files, kind))
        requestor.start(project.id)
        provider = cluster.client("provider")
        broker = ProviderBroker(provider.provider_config())
        channel = broker.channel()
        grants = _claim_round(channel, provider, tasks)
        me = provider.me().id
        rng = np.random.default_rng(1)
        messages = []
        for grant in grants:
            body = encode_weights(
                [(rng.standard_normal(w.shape) * 1e-3).astype(w.dtype) for w in weights]
            )
            messages.append(
                TrainResult(
                    project_id=grant.project_id,
                    round=0,
                    task_id=grant.task_id,
                    claim_id=grant.claim_id,
                    provider_id=me,
                    status=TrainingStatus.TRAINED,
                    blob_key=grant.result_key,
                    sha256=hashlib.sha256(body).hexdigest(),
                    inline_delta=base64.b64encode(body).decode(),
                    schema_hash=grant.schema_hash,
                    samples=1,
                )
            )
        began = time.perf_counter()
        for message in messages:
            broker.publish(message)
        published = time.perf_counter() - began
        while True:
            done = cluster.sql("SELECT count(*) FROM results WHERE status = 'accepted'")[0][0]
            if done >= tasks or time.perf_counter() - began > 300:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - began
        broker.close()
        closed = cluster.sql("SELECT count(*) FROM rounds WHERE closed_at IS NOT NULL")[0][0]
    return {
        "results": tasks,
        "accepted": int(done),
        "seconds": elapsed,
        "results_per_second": done / elapsed,
        "publish_seconds": published,
        "rounds_closed": int(closed),
    }


BIG_HIDDEN = 140_000  # digits MLP 64-140000-10: 10.5M parameters


def _save_big_model(path: str) -> None:
    from daig.examples import build_mlp

    build_mlp(hidden=BIG_HIDDEN).save(path)


def big_model_through_aggregator(tasks: int, directory: Path) -> dict[str, float]:
    """K fp32 deltas of a 10.5M-parameter model through the real aggregator process."""
    import multiprocessing

    import httpx

    from bench.harness import bench_cluster
    from bench.provider_broker import ProviderBroker
    from daig.contract.messages import TrainingStatus, TrainResult
    from daig.examples import write_digits
    from daig.hyperparams import Hyperparameters
    from daig.weights.h5weights import read_weights

    work = directory
    files = write_digits(work)
    model = work / "big-mlp.h5"
    child = multiprocessing.get_context("spawn").Process(target=_save_big_model, args=(str(model),))
    child.start()
    child.join(600)
    if child.exitcode != 0:
        raise RuntimeError(f"building the big model failed (exit {child.exitcode})")
    weights = read_weights(model)
    parameters = sum(int(w.size) for w in weights)
    with bench_cluster(scheduler_tick_seconds="0.5") as cluster:
        requestor = cluster.client("requestor")
        project = requestor.create_project(
            "throughput-big",
            Hyperparameters(epochs=1, total_tasks=tasks, task_size=tasks, max_contributors=tasks),
        )
        requestor.upload_file(project.id, "model", model)
        requestor.upload_file(project.id, "data", files.data)
        requestor.upload_file(project.id, "labels", files.labels)
        requestor.start(project.id)
        provider = cluster.client("provider")
        broker = ProviderBroker(provider.provider_config())
        channel = broker.channel()
        grants = _claim_round(channel, provider, tasks)
        me = provider.me().id
        rng = np.random.default_rng(2)
        messages, delta_bytes = [], 0
        with httpx.Client(timeout=300) as http:
            for grant in grants:
                body = encode_weights(
                    [(rng.standard_normal(w.shape) * 1e-3).astype(w.dtype) for w in weights]
                )
                http.put(grant.result_url, content=body).raise_for_status()
                delta_bytes += len(body)
                messages.append(
                    TrainResult(
                        project_id=grant.project_id,
                        round=0,
                        task_id=grant.task_id,
                        claim_id=grant.claim_id,
                        provider_id=me,
                        status=TrainingStatus.TRAINED,
                        blob_key=grant.result_key,
                        sha256=hashlib.sha256(body).hexdigest(),
                        schema_hash=grant.schema_hash,
                        samples=1,
                    )
                )
                del body
        began_wall = cluster.sql("SELECT clock_timestamp()")[0][0]
        began = time.perf_counter()
        for message in messages:
            broker.publish(message)
        while time.perf_counter() - began < 600:
            closed = cluster.sql("SELECT closed_at FROM rounds WHERE closed_at IS NOT NULL")
            if closed:
                break
            time.sleep(0.05)
        broker.close()
        received = cluster.sql(
            "SELECT max(received_at), count(*) FROM results WHERE status = 'accepted'"
        )[0]
    if not closed or received[1] < tasks:
        raise RuntimeError(f"only {received[1]} of {tasks} results accepted, round not closed")
    to_last = (received[0] - began_wall).total_seconds()
    to_close = (closed[0][0] - began_wall).total_seconds()
    return {
        "parameters": parameters,
        "results": tasks,
        "delta_mb": delta_bytes / 1e6,
        "seconds_to_last_accepted": to_last,
        "seconds_to_round_closed": to_close,
        "accepted_mb_s": delta_bytes / 1e6 / to_last,
        "closed_mb_s": delta_bytes / 1e6 / to_close,
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deltas", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--big-tasks", type=int, default=8, help="K of the 10.5M-parameter run")
    parser.add_argument("--pipeline-deltas", default="8,32", help="K values of the pipeline rows")
    parser.add_argument("--pipeline-workers", default="2,4", help="pool sizes of the pipeline")
    parser.add_argument("--pipeline-repeats", type=int, default=5)
    parser.add_argument("--in-process-only", action="store_true", help="part 1 only (no cluster)")
    return parser.parse_args()


def _print_folds(folds: dict[str, dict[str, float]], deltas: int, repeats: int) -> None:
    print(
        f"\nfolding {deltas} deltas of a 10.5M-parameter model (fp32-equivalent MB/s, "
        f"best of {repeats})\n"
    )
    print(f"{'codec / strategy':<24}{'fold MB/s':>12}{'decode+fold MB/s':>18}")
    for name, row in folds.items():
        both = row.get("decode_and_fold_mb_s")
        print(f"{name:<24}{row['fold_mb_s']:>12.0f}{'' if both is None else f'{both:>18.0f}'}")


def main() -> int:
    args = _arguments()
    folds = fold_throughput(args.deltas, args.repeats)
    pipeline = delta_pipeline.measure(
        [int(k) for k in args.pipeline_deltas.split(",")],
        [int(w) for w in args.pipeline_workers.split(",")],
        args.pipeline_repeats,
    )
    rates = pipeline["pipeline_mb_s"]
    assert isinstance(rates, dict)
    checks = {
        "mean_fold_at_least_1_GB_s": folds["fp32"]["fold_mb_s"] >= 1000,
        "delta_pipeline_at_least_1_GB_s": max(
            row["mb_s"] for name, row in rates.items() if " memory," in name
        )
        >= 1000,
    }
    out: dict[str, object] = {"fold": folds, "delta_pipeline": pipeline}
    if not args.in_process_only:
        with tempfile.TemporaryDirectory(prefix="daig-aggtp-") as directory:  # removed after
            out["results"] = rate = results_per_second(args.tasks, Path(directory) / "tiny")
            out["big_model"] = big = big_model_through_aggregator(
                args.big_tasks, Path(directory) / "big"
            )
        # The per-delta path ends when the last delta is accepted; closing the round (the new
        # weights, and in this one-round project the final model) is per-round work.
        checks["aggregator_process_per_delta_at_least_1_GB_s"] = big["accepted_mb_s"] >= 1000
    _print_folds(folds, args.deltas, args.repeats)
    print()
    print(delta_pipeline.report(pipeline, args.pipeline_repeats))
    if not args.in_process_only:
        print(
            f"\ntiny model through broker and aggregator: {rate['accepted']} results in "
            f"{rate['seconds']:.2f} s = {rate['results_per_second']:.0f} results/s "
            f"(round closed: {bool(rate['rounds_closed'])})"
        )
        print(
            f"10.5M-parameter model through the aggregator process: {big['results']} fp32 "
            f"deltas ({big['delta_mb']:.0f} MB) accepted in "
            f"{big['seconds_to_last_accepted']:.2f} s = {big['accepted_mb_s']:.0f} MB/s; round "
            f"closed after {big['seconds_to_round_closed']:.2f} s = {big['closed_mb_s']:.0f} MB/s"
        )
    print(f"checks: {checks}")
    out["checks"] = checks
    print(json.dumps(out, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
