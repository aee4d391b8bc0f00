"""Bytes per round with each delta encoding, and what each costs in accuracy.

Digits, 12 shards, K=4, 3 passes, 5 epochs per task, trained by the same K-batch SGD as DAIG
(``daig/reference.py``); every delta goes through the codec exactly as a provider encodes it
and the aggregator decodes it (``daig/weights/stream.py``). Same seed for every codec, so the
only difference is the encoding. Also the size of one delta of a ~10M-parameter model.

Then the real system (skipped with ``--no-system``): one cluster with 4 providers trains the
same project ``--system-runs`` times per codec (project setting ``delta_codec``, the codecs
interleaved), and the bytes per round are the sizes of the round's accepted deltas as the
aggregator stored them (inline or uploaded, every accepted delta is kept in the blob store
under its result key), with the final held-out accuracy of each run (not seeded: shuffling
and thread order differ from run to run).

    .venv/bin/python -m bench.codecs [--seeds 0 1 2] [--no-system] [--system-runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from daig.examples import DigitsFiles
from daig.hyperparams import Hyperparameters
from daig.logs import quiet_tensorflow
from daig.reference import Delta, accuracy, train
from daig.weights.codecs import CODEC_NAMES
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights, encode_weights

PARAMS = Hyperparameters(epochs=5, batch_size=32, total_tasks=12, task_size=4, passes=3)
BIG_MODEL = [(2048, 4096), (4096,), (4096, 512), (512,), (512, 10), (10,)]  # ~10.5M parameters


def system_runs(files: DigitsFiles, runs: int) -> dict[str, dict[str, Any]]:
    """Each codec through DAIG itself, ``runs`` times (interleaved): stored delta bytes per
    round and final held-out accuracy."""
    from bench.harness import bench_cluster, run_project
    from daig.examples import held_out_accuracy

    rows: dict[str, dict[str, Any]] = {
        codec: {"bytes_per_round": 0, "accuracies": []} for codec in CODEC_NAMES
    }
    with bench_cluster() as cluster:
        cluster.add_providers(PARAMS.task_size)
        blobs = cluster.work / "blobs"
        for run in range(runs):
            for codec in CODEC_NAMES:
                params = PARAMS.model_copy(update={"delta_codec": codec})
                project_id, _ = run_project(cluster, files, params, name=f"codec-{codec}-{run}")
                stored = cluster.sql(
                    "SELECT round_index, blob_key FROM results WHERE project_id = :p "
                    "AND status = 'accepted'",
                    p=project_id,
                )
                per_round: dict[int, int] = {}
                for round_index, key in stored:
                    size = (blobs / key).stat().st_size
                    per_round[round_index] = per_round.get(round_index, 0) + size
                model = cluster.work / f"trained-{codec}-{run}.h5"
                cluster.client("requestor").download_model(project_id, model)
                row = rows[codec]
                row["bytes_per_round"] = max(row["bytes_per_round"], *per_round.values())
                row["accuracies"].append(
                    held_out_accuracy(model, files.test_data, files.test_labels)
                )
    for row in rows.values():
        row["accuracy_mean"] = float(np.mean(row["accuracies"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-system", action="store_true", help="skip the runs of DAIG itself")
    parser.add_argument("--system-runs", type=int, default=3, help="DAIG runs per codec")
    args = parser.parse_args()
    quiet_tensorflow()
    import keras

    from daig.examples import write_digits

    files = write_digits(Path(tempfile.mkdtemp(prefix="daig-codecs-")))
    x, y = np.load(files.data), np.load(files.labels)
    x_test, y_test = np.load(files.test_data), np.load(files.test_labels)
    rows: dict[str, dict[str, Any]] = {}
    for codec in CODEC_NAMES:
        sizes: list[int] = []

        def through_codec(
            round_index: int, slot: int, delta: Delta, codec: str = codec, sizes: list[int] = sizes
        ) -> Delta:
            data = encode_weights(delta, codec=codec)
            sizes.append(len(data))
            return decode_weights(data, WeightSchema.of(delta))

        accuracies = []
        for seed in args.seeds:
            keras.utils.set_random_seed(seed)
            accuracies.append(
                accuracy(train(files.model, x, y, PARAMS, tamper=through_codec), x_test, y_test)
            )
        rows[codec] = {
            "bytes_per_delta": sizes[0],
            "bytes_per_round": sizes[0] * PARAMS.task_size,
            "accuracy_mean": float(np.mean(accuracies)),
            "accuracies": accuracies,
        }
    rng = np.random.default_rng(0)
    big = [(rng.standard_normal(shape) * 1e-3).astype(np.float32) for shape in BIG_MODEL]
    for codec in CODEC_NAMES:
        data = encode_weights(big, codec=codec)
        back = decode_weights(data, WeightSchema.of(big))
        error = max(float(np.abs(a - b).max()) for a, b in zip(big, back, strict=True))
        rows[codec] |= {"bytes_10m_model": len(data), "max_abs_error_10m": error}
    full = rows["fp32"]
    print(
        f"\ndigits MLP (4,810 parameters), K={PARAMS.task_size}, seeds {args.seeds}; "
        "and one delta of a 10.5M-parameter model\n"
    )
    print(
        f"{'codec':<6}{'bytes/round':>13}{'vs fp32':>9}{'accuracy':>10}{'vs fp32':>10}"
        f"{'10M delta MB':>14}{'vs fp32':>9}"
    )
    for codec, row in rows.items():
        print(
            f"{codec:<6}{row['bytes_per_round']:>13,}"
            f"{full['bytes_per_round'] / row['bytes_per_round']:>8.2f}x"
            f"{row['accuracy_mean']:>10.4f}"
            f"{(row['accuracy_mean'] - full['accuracy_mean']) * 100:>+9.2f}p"
            f"{row['bytes_10m_model'] / 1e6:>14.2f}"
            f"{full['bytes_10m_model'] / row['bytes_10m_model']:>8.2f}x"
        )
    int8 = rows["int8"]
    checks = {
        "int8_at_least_3.5x_fewer_bytes": full["bytes_per_round"] / int8["bytes_per_round"] >= 3.5,
        "int8_accuracy_loss_at_most_0.5_points": full["accuracy_mean"] - int8["accuracy_mean"]
        <= 0.005,
    }
    result: dict[str, Any] = {"params": PARAMS.model_dump(), "codecs": rows}
    if not args.no_system:
        system = system_runs(files, args.system_runs)
        base = system["fp32"]
        print(
            f"\nDAIG itself, 4 providers, {args.system_runs} run(s) per codec (stored delta "
            "bytes per round, mean accuracy):\n"
        )
        print(f"{'codec':<6}{'bytes/round':>13}{'vs fp32':>9}{'accuracy':>10}{'vs fp32':>10}")
        for codec, row in system.items():
            print(
                f"{codec:<6}{row['bytes_per_round']:>13,}"
                f"{base['bytes_per_round'] / row['bytes_per_round']:>8.2f}x"
                f"{row['accuracy_mean']:>10.4f}"
                f"{(row['accuracy_mean'] - base['accuracy_mean']) * 100:>+9.2f}p"
            )
        result["system"] = system
        checks["system_int8_at_least_3.5x_fewer_bytes"] = (
            base["bytes_per_round"] / system["int8"]["bytes_per_round"] >= 3.5
        )
    result["checks"] = checks
    print(json.dumps(result, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
