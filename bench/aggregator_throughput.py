"""Aggregator throughput: deltas of a ~10M-parameter model folded per second, and results per
second for a tiny model through the real broker and aggregator process.

Part 1 (in process, the aggregator's own code): K deltas of a 10.5M-parameter model (42 MB in
fp32) decoded from their weight streams and folded into the running mean
(``services/aggregator/logic.WeightedMean``), per codec; and the robust strategies for
comparison. MB/s counts fp32-equivalent delta bytes folded.

Part 2 (real system): a running cluster, a tiny-model project with K=200 tasks claimed by one
provider account; 200 results published at once (inline deltas) through that account's own
broker credentials; results/s = how fast the aggregator process records them (one round
closes at the 200th).

    .venv/bin/python -m bench.aggregator_throughput
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

import numpy as np

from daig.weights.codec import decode_weights, encode_weights
from daig.weights.codecs import CODEC_NAMES
from daig.weights.schema import WeightSchema
from services.aggregator.logic import WeightedMean
from services.aggregator.strategies import make_strategy

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
    for name in ("median", "trimmed_mean", "clipped_mean"):
        strategy = make_strategy(name)
        began = time.perf_counter()
        strategy.combine([(d, 100) for d in deltas])
        out[f"strategy:{name}"] = {"fold_mb_s": megabytes / (time.perf_counter() - began)}
    return out


def results_per_second(tasks: int) -> dict[str, float]:
    from bench.harness import bench_cluster
    from daig.examples import write_digits
    from daig.hyperparams import Hyperparameters
    from daig.messages import ResultStatus, TrainResult
    from daig.weights.h5weights import read_weights
    from tests.integration.provider_broker import ProviderBroker

    files = write_digits(Path(tempfile.mkdtemp(prefix="daig-aggtp-")))
    weights = read_weights(files.model)
    with bench_cluster(scheduler_tick_seconds="0.5") as cluster:
        requestor = cluster.client("requestor")
        project = requestor.create_project(
            "throughput",
            Hyperparameters(epochs=1, total_tasks=tasks, task_size=tasks, max_contributors=tasks),
        )
        for kind in ("model", "data", "labels"):
            requestor.upload_file(project["id"], kind, getattr(files, kind))
        requestor.start(project["id"])
        provider = cluster.client("provider")
        broker = ProviderBroker(provider.provider_config())
        channel = broker.channel()
        task_ids = []
        deadline = time.monotonic() + 60
        while len(task_ids) < tasks and time.monotonic() < deadline:
            method, _, body = channel.basic_get("daig.tasks", auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            task_ids.append(json.loads(body)["task_id"])
        grants = [provider.claim(t, "bench") for t in task_ids]
        me = provider.me()["id"]
        rng = np.random.default_rng(1)
        messages = []
        for grant in grants:
            body = encode_weights(
                [(rng.standard_normal(w.shape) * 1e-3).astype(w.dtype) for w in weights]
            )
            messages.append(
                TrainResult(
                    project_id=grant["project_id"],
                    round=0,
                    task_id=grant["task_id"],
                    claim_id=grant["claim_id"],
                    provider_id=me,
                    status=ResultStatus.TRAINED,
                    blob_key=grant["result_key"],
                    sha256=hashlib.sha256(body).hexdigest(),
                    inline_delta=base64.b64encode(body).decode(),
                    schema_hash=grant["schema_hash"],
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deltas", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    folds = fold_throughput(args.deltas, args.repeats)
    rate = results_per_second(args.tasks)
    print(
        f"\nfolding {args.deltas} deltas of a 10.5M-parameter model (fp32-equivalent MB/s, "
        f"best of {args.repeats})\n"
    )
    print(f"{'codec / strategy':<24}{'fold MB/s':>12}{'decode+fold MB/s':>18}")
    for name, row in folds.items():
        both = row.get("decode_and_fold_mb_s")
        print(f"{name:<24}{row['fold_mb_s']:>12.0f}{'' if both is None else f'{both:>18.0f}'}")
    print(
        f"\ntiny model through broker and aggregator: {rate['accepted']} results in "
        f"{rate['seconds']:.2f} s = {rate['results_per_second']:.0f} results/s "
        f"(round closed: {bool(rate['rounds_closed'])})"
    )
    checks = {"mean_fold_at_least_1_GB_s": folds["fp32"]["fold_mb_s"] >= 1000}
    print(json.dumps({"fold": folds, "results": rate, "checks": checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
