"""Time to accuracy: digits trained by DAIG with N = 1, 2, 4 providers vs local model.fit.

For each N it runs the same project (12 shards, K=4, 3 passes, 5 epochs per task: each row
seen 15 times) on a fresh cluster, reports the wall time, held-out accuracy and a per-round
breakdown (dispatch, downloads, fit, upload, transit, aggregation, other), and compares with
``model.fit`` of the same 15 epochs in one process. A second part measures coordination
overhead with ~2 s tasks: round wall time minus the slowest provider's fit, as a share of
the round's wall time. Local ``model.fit`` and DAIG start from the same model file; the same
K-batch SGD run in one process (``daig/reference.py``) shows what accuracy the algorithm
itself reaches, apart from the system.

    .venv/bin/python -m bench.time_to_accuracy [--providers 1 2 4] [--skip-overhead]
        [--only-overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import (
    PHASES,
    BenchCluster,
    bench_cluster,
    round_report,
    run_project,
    summarize,
)
from daig.examples import DigitsFiles
from daig.hyperparams import Hyperparameters
from daig.logs import quiet_tensorflow

PARAMS = Hyperparameters(epochs=5, batch_size=32, total_tasks=12, task_size=4, passes=3)
TASK_SECONDS = 2.0  # the overhead part's task length, calibrated on this machine at start


def load() -> float:
    return os.getloadavg()[0]


def warm_up(cluster: BenchCluster, files: DigitsFiles) -> None:
    """One tiny project first, so training processes have imported TensorFlow."""
    run_project(
        cluster, files, Hyperparameters(epochs=1, total_tasks=4, task_size=4), name="warm-up"
    )


def daig_run(files: DigitsFiles, providers: int, params: Hyperparameters) -> dict[str, Any]:
    from daig.examples import held_out_accuracy

    load_before = load()
    with bench_cluster() as cluster:
        cluster.add_providers(providers)
        warm_up(cluster, files)
        project_id, wall = run_project(cluster, files, params)
        report = round_report(cluster, project_id)
        model = cluster.work / "trained.h5"
        cluster.client("requestor").download_model(project_id, model)
        accuracy = held_out_accuracy(model, files.test_data, files.test_labels)
    median = summarize(report)
    return {
        "providers": providers,
        "wall_seconds": wall,
        "accuracy": accuracy,
        "rounds": len(report),
        "load": [load_before, load()],
        "per_round_median": median,
        "overhead_share": median["overhead"] / median["wall"],
        "per_round": report,
    }


def local_run(files: DigitsFiles, params: Hyperparameters) -> dict[str, Any]:
    """``model.fit`` of every row for the same total epochs, from the same model file."""
    from daig.modelfile.keras_load import load_model
    from daig.reference import accuracy

    x, y = np.load(files.data), np.load(files.labels)
    model, _ = load_model(files.model)
    began = time.perf_counter()
    model.fit(x, y, epochs=params.epochs * params.passes, batch_size=params.batch_size, verbose=0)
    wall = time.perf_counter() - began
    return {
        "wall_seconds": wall,
        "accuracy": accuracy(model, np.load(files.test_data), np.load(files.test_labels)),
    }


def reference(files: DigitsFiles, params: Hyperparameters) -> float:
    """The same K-batch SGD as DAIG in one process (``daig/reference.py``)."""
    from daig.reference import reference_accuracy

    return reference_accuracy(
        files.model,
        np.load(files.data),
        np.load(files.labels),
        np.load(files.test_data),
        np.load(files.test_labels),
        params,
    )


def overhead_params(files: DigitsFiles) -> Hyperparameters:
    """2 shards, K=2, 6 rounds, with as many epochs as make one task ~TASK_SECONDS of fit here.

    Calibrated by timing one shard's fit in this process, so the tasks are ~2 s on this
    machine as loaded now (two providers training at once may take longer; the measured fit
    is reported).
    """
    from daig.modelfile.keras_load import load_model

    x, y = np.load(files.data), np.load(files.labels)
    shard = slice(0, len(x) // 2)
    model, _ = load_model(files.model)
    model.fit(x[shard], y[shard], epochs=1, batch_size=32, verbose=0)  # tracing
    began = time.perf_counter()
    model.fit(x[shard], y[shard], epochs=5, batch_size=32, verbose=0)
    per_epoch = (time.perf_counter() - began) / 5
    epochs = max(1, round(TASK_SECONDS / per_epoch))
    return Hyperparameters(epochs=epochs, batch_size=32, total_tasks=2, task_size=2, passes=6)


def print_tables(
    local: dict[str, Any], reference_acc: float, runs: list[dict[str, Any]], overhead: Any
) -> None:
    epochs = PARAMS.epochs * PARAMS.passes
    print(
        f"\ndigits, {PARAMS.total_tasks} shards, K={PARAMS.task_size}, {PARAMS.passes} passes "
        f"x {PARAMS.epochs} epochs (= {epochs} epochs per row); {os.cpu_count()} cores\n"
    )
    print(f"{'training':<32}{'wall s':>8}{'accuracy':>10}{'load':>12}")
    label = "local model.fit, one process"
    print(f"{label:<32}{local['wall_seconds']:>8.1f}{local['accuracy']:>10.4f}")
    print(f"{'same K-batch SGD, one process':<32}{'':>8}{reference_acc:>10.4f}")
    for run in runs:
        label = f"DAIG, {run['providers']} provider{'s' if run['providers'] > 1 else ''}"
        span = "{:.1f}-{:.1f}".format(*run["load"])
        print(f"{label:<32}{run['wall_seconds']:>8.1f}{run['accuracy']:>10.4f}{span:>12}")
    print("(load: 1-minute load average before-after)")
    print("\nDAIG per round (median, round 0 left out), seconds, along the critical path:")
    header = f"{'providers':<10}{'wall':>7}" + "".join(f"{p:>12}" for p in PHASES)
    print(header + f"{'slow fit':>9}{'overhead':>10}")
    for run in [*runs, *([overhead] if overhead else [])]:
        m = run["per_round_median"]
        label = f"{run['providers']}" + (" (~2 s)" if run is overhead else "")
        print(
            f"{label:<10}{m['wall']:>7.2f}"
            + "".join(f"{m[p]:>12.3f}" for p in PHASES)
            + f"{m['slowest_fit']:>9.3f}{run['overhead_share']:>10.1%}"
        )
    print(
        "(with fewer providers than K=4 a provider trains several tasks of a round in turn:\n"
        " the columns add up its chain; overhead = (wall - slowest provider's fit) / wall)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--only-overhead", action="store_true")
    args = parser.parse_args()
    quiet_tensorflow()
    from daig.examples import write_digits

    files = write_digits(Path(tempfile.mkdtemp(prefix="daig-tta-")))
    result: dict[str, Any] = {"params": PARAMS.model_dump(), "cores": os.cpu_count()}
    runs: list[dict[str, Any]] = []
    local: dict[str, Any] = {}
    reference_acc = float("nan")
    if not args.only_overhead:
        local = local_run(files, PARAMS)
        reference_acc = reference(files, PARAMS)
        runs = [daig_run(files, n, PARAMS) for n in args.providers]
        result |= {
            "local": local,
            "reference_accuracy": reference_acc,
            "daig": [{k: v for k, v in r.items() if k != "per_round"} for r in runs],
        }
    overhead = None
    if not args.skip_overhead:
        params = overhead_params(files)
        overhead = daig_run(files, 2, params)
        result["overhead"] = {"params": params.model_dump()} | overhead
    if runs:
        print_tables(local, reference_acc, runs, overhead)
    elif overhead:
        print_tables(
            {"wall_seconds": float("nan"), "accuracy": float("nan")}, reference_acc, [], overhead
        )
    if overhead:
        m = overhead["per_round_median"]
        share = overhead["overhead_share"]
        print(
            f"\ncoordination overhead with ~{m['slowest_fit']:.1f} s tasks "
            f"({result['overhead']['params']['epochs']} epochs of 2 shards, K=2, 2 providers): "
            f"{m['overhead']:.3f} s of {m['wall']:.2f} s per round = {share:.1%} "
            f"(target <= 10%: {'MET' if share <= 0.10 else 'NOT MET'})"
        )
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
