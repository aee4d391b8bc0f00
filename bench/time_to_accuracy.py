"""Time to accuracy: digits trained by DAIG with N = 1, 2, 4 providers vs local model.fit.

For each N it runs the same project (12 shards, K=4, 3 passes, 5 epochs per task: each row
seen 15 times) on a fresh cluster, reports the wall time, held-out accuracy and a per-round
breakdown (dispatch, downloads, fit, upload, transit, aggregation, other), and compares with
``model.fit`` of the same 15 epochs in one process. A second part measures coordination
overhead with ~2 s tasks: round wall time minus the slowest provider's fit.

    .venv/bin/python -m bench.time_to_accuracy [--providers 1 2 4] [--skip-overhead]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import PHASES, bench_cluster, round_report, run_project, summarize
from daig.hyperparams import Hyperparameters
from daig.logs import quiet_tensorflow

PARAMS = Hyperparameters(epochs=5, batch_size=32, total_tasks=12, task_size=4, passes=3)
# ~2 s of fit per task on this class of machine: 2 shards of ~720 rows, many epochs.
OVERHEAD_PARAMS = Hyperparameters(epochs=40, batch_size=32, total_tasks=2, task_size=2, passes=6)


def warm_up(cluster, files) -> None:  # type: ignore[no-untyped-def]
    """One tiny project first, so training processes have imported TensorFlow."""
    run_project(
        cluster, files, Hyperparameters(epochs=1, total_tasks=4, task_size=4), name="warm-up"
    )


def daig_run(files, providers: int, params: Hyperparameters) -> dict:  # type: ignore[no-untyped-def]
    from daig.examples import held_out_accuracy

    with bench_cluster(scheduler_tick_seconds="0.5") as cluster:
        cluster.add_providers(providers)
        warm_up(cluster, files)
        project_id, wall = run_project(cluster, files, params)
        report = round_report(cluster, project_id)
        model = cluster.work / "trained.h5"
        cluster.client("requestor").download_model(project_id, model)
        accuracy = held_out_accuracy(model, files.test_data, files.test_labels)
    return {
        "providers": providers,
        "wall_seconds": wall,
        "accuracy": accuracy,
        "rounds": len(report),
        "per_round_median": summarize(report),
        "per_round": report,
    }


def local_run(files, params: Hyperparameters) -> dict:  # type: ignore[no-untyped-def]
    import keras

    from daig.examples import build_mlp

    x, y = np.load(files.data), np.load(files.labels)
    keras.utils.set_random_seed(0)
    model = build_mlp()
    began = time.perf_counter()
    model.fit(x, y, epochs=params.epochs * params.passes, batch_size=params.batch_size, verbose=0)
    wall = time.perf_counter() - began
    predictions = np.argmax(model.predict(np.load(files.test_data), verbose=0), axis=1)
    return {
        "wall_seconds": wall,
        "accuracy": float(np.mean(predictions == np.load(files.test_labels))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    quiet_tensorflow()
    from daig.examples import write_digits

    files = write_digits(Path(tempfile.mkdtemp(prefix="daig-tta-")))
    local = local_run(files, PARAMS)
    runs = [daig_run(files, n, PARAMS) for n in args.providers]
    overhead = None if args.skip_overhead else daig_run(files, 2, OVERHEAD_PARAMS)

    epochs = PARAMS.epochs * PARAMS.passes
    print(
        f"\ndigits, {PARAMS.total_tasks} shards, K={PARAMS.task_size}, {PARAMS.passes} passes "
        f"x {PARAMS.epochs} epochs (= {epochs} epochs per row)\n"
    )
    print(f"{'training':<26}{'wall s':>8}{'accuracy':>10}")
    print(f"{'local model.fit':<26}{local['wall_seconds']:>8.1f}{local['accuracy']:>10.4f}")
    for run in runs:
        print(
            f"{'DAIG, ' + str(run['providers']) + ' providers':<26}"
            f"{run['wall_seconds']:>8.1f}{run['accuracy']:>10.4f}"
        )
    print("\nper round (median, round 0 left out), seconds:")
    print(f"{'providers':<10}{'wall':>7}" + "".join(f"{p:>12}" for p in PHASES))
    for run in runs + ([overhead] if overhead else []):
        m = run["per_round_median"]
        label = f"{run['providers']}" + (" (2s)" if run is overhead else "")
        print(f"{label:<10}{m['wall']:>7.2f}" + "".join(f"{m[p]:>12.3f}" for p in PHASES))
    result = {
        "params": PARAMS.model_dump(),
        "local": local,
        "daig": [{k: v for k, v in r.items() if k != "per_round"} for r in runs],
    }
    if overhead:
        m = overhead["per_round_median"]
        share = m["overhead"] / m["wall"]
        print(
            f"\ncoordination overhead with ~{m['slowest_fit']:.1f} s tasks: "
            f"{m['overhead']:.3f} s of {m['wall']:.2f} s per round = {share:.1%} "
            f"(target <= 10%)"
        )
        result["overhead"] = {
            "params": OVERHEAD_PARAMS.model_dump(),
            "median": m,
            "share": share,
            "per_round": overhead["per_round"],
        }
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
