"""Poisoning benchmark: 1 of K=5 providers sends scaled or random updates.

Digits, 10 shards, K=5, 4 passes (8 rounds), 3 epochs per task, trained by the same K-batch
SGD as DAIG (``daig/reference.py``) with DAIG's aggregation strategies
(``daig_aggregator/strategies.py``). In every round one of the five updates comes from the
attacker: ``scaled`` sends -10 x its honest update, ``random`` sends Gaussian noise 100x the
honest update's scale. The norm gate (``max_norm_ratio``) is off for these rows so the
aggregators are measured on their own; an extra row per attack shows the plain mean behind
the norm gate (10x), for information: the gate needs a few accepted norms before it can
judge, and -10x sits right at its threshold.

    .venv/bin/python -m bench.poisoning
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from daig.hyperparams import Hyperparameters
from daig.logs import quiet_tensorflow
from daig.reference import Delta, accuracy, train
from daig_aggregator.logic import delta_norm, is_norm_outlier
from daig_aggregator.strategies import make_strategy

PARAMS = Hyperparameters(epochs=3, batch_size=32, total_tasks=10, task_size=5, passes=4)
STRATEGIES = ("mean", "median", "trimmed_mean", "clipped_mean")
ATTACKER_SLOT = 0


def attack(kind: str, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)

    def tamper(round_index: int, slot: int, delta: Delta) -> Delta:
        if slot != ATTACKER_SLOT:
            return delta
        if kind == "scaled":
            return [-10.0 * d for d in delta]
        scale = 100.0 * float(np.sqrt(np.mean([np.mean(np.square(d)) for d in delta])))
        return [rng.normal(0.0, scale, d.shape).astype(d.dtype) for d in delta]

    return tamper


def gated_mean(max_ratio: float):  # type: ignore[no-untyped-def]
    """The mean behind DAIG's norm gate, as the aggregator applies it result by result."""
    mean = make_strategy("mean")
    history: list[float] = []

    def combine(results):  # type: ignore[no-untyped-def]
        kept = []
        for delta, samples in results:
            norm = delta_norm(delta)
            if not is_norm_outlier(norm, history[-2 * PARAMS.task_size :], max_ratio):
                kept.append((delta, samples))
                history.append(norm)
        return mean.combine(kept)

    return combine


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet_tensorflow()
    import keras

    from daig.examples import write_digits

    files = write_digits(Path(tempfile.mkdtemp(prefix="daig-poison-")))
    x, y = np.load(files.data), np.load(files.labels)
    x_test, y_test = np.load(files.test_data), np.load(files.test_labels)

    def run(combine, tamper=None) -> float:  # type: ignore[no-untyped-def]
        keras.utils.set_random_seed(args.seed)
        return accuracy(
            train(files.model, x, y, PARAMS, combine=combine, tamper=tamper), x_test, y_test
        )

    began = time.perf_counter()
    rows: list[dict[str, object]] = []
    clean = run(make_strategy("mean").combine)
    rows.append({"attack": "none", "aggregation": "mean", "accuracy": clean})
    for kind in ("scaled", "random"):
        for name in STRATEGIES:
            strategy = make_strategy(name, trim_fraction=0.2, clip_factor=1.0)
            rows.append(
                {
                    "attack": kind,
                    "aggregation": name,
                    "accuracy": run(strategy.combine, attack(kind, args.seed)),
                }
            )
        rows.append(
            {
                "attack": kind,
                "aggregation": "mean + norm gate (10x)",
                "accuracy": run(gated_mean(10.0), attack(kind, args.seed)),
            }
        )
    print(
        f"\nheld-out digits accuracy, 1 of K=5 updates poisoned every round "
        f"({PARAMS.passes * 2} rounds, seed {args.seed}, {time.perf_counter() - began:.0f} s)\n"
    )
    print(f"{'attack':<8} {'aggregation':<24} {'accuracy':>9} {'vs clean':>9}  verdict")
    checks = {}
    for row in rows:
        acc = float(row["accuracy"])  # type: ignore[arg-type]
        gap = (acc - clean) * 100
        robust = row["aggregation"] in STRATEGIES[1:]
        if row["attack"] == "none":
            verdict = "clean baseline"
        elif str(row["aggregation"]).startswith("mean +"):
            verdict = "(information)"
        elif robust:
            verdict = "within 2 points" if gap >= -2 else "DEGRADED"
            checks[f"{row['attack']}/{row['aggregation']}"] = gap >= -2
        else:
            verdict = "collapsed" if gap < -20 else "survived"
            checks[f"{row['attack']}/mean collapses"] = gap < -20
        print(f"{row['attack']:<8} {row['aggregation']:<24} {acc:>9.4f} {gap:>+8.1f}p  {verdict}")
    passed = all(checks.values())
    print(
        json.dumps(
            {"clean_accuracy": clean, "rows": rows, "checks": checks, "passed": passed}, indent=2
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
