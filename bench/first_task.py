"""Where a provider's first task's time goes, next to its later tasks (no cluster needed).

It drives the agent's ``Trainer`` the way the agent does, on the digits MLP and a 180-row
shard (5 epochs, batch 32): start the training process (``--at-task``: only when the first
task arrives, as before warm start), wait ``--lead-seconds`` (default: until it says ready),
then for each task ``prepare`` the model (tracing its step for the task's rows unless
``--no-trace``), pass ``--download-seconds`` as the agent's downloads would, and ``run``.
Per task it prints the wall time from "task arrives" to "delta written" and the child's
breakdown: waiting for TensorFlow, model load, trace, setup (weights and rows read in), fit,
encode; and the training process's start-up (TensorFlow import, warm-up, start to ready).

    .venv/bin/python -m bench.first_task [--tasks 3] [--lead-seconds S] [--at-task]
        [--no-trace] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from daig.examples import write_digits
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import save_weights
from provider_agent.trainer import RowsLike, Trainer, TrainJob

ROWS = 180  # a digits shard of the versus-Flower work (1,437 rows / 8)
COLUMNS = ("total", "wait_ready", "load", "trace", "setup", "fit", "encode")


def digits_job(directory: Path) -> TrainJob:
    files = write_digits(directory)
    weights = read_weights(files.model)
    save_weights(directory / "w.dwt", weights)
    np.save(directory / "x.npy", np.load(files.data)[:ROWS])
    np.save(directory / "y.npy", np.load(files.labels)[:ROWS])
    return TrainJob(
        model_path=str(files.model),
        model_sha256=hashlib.sha256(files.model.read_bytes()).hexdigest(),
        weights_path=str(directory / "w.dwt"),
        weight_schema=WeightSchema.of(weights).to_json(),
        x_path=str(directory / "x.npy"),
        y_path=str(directory / "y.npy"),
        epochs=5,
        batch_size=32,
        validation_split=0.0,
        delta_path=str(directory / "delta.dwt"),
    )


def one_run(job: TrainJob, args: argparse.Namespace) -> dict[str, Any]:
    rows = RowsLike("float32", [64], "int64", [], validation=False)
    trainer = Trainer()
    tasks: list[dict[str, float]] = []
    try:
        began = time.monotonic()
        if not args.at_task:
            trainer.start()
            lead = args.lead_seconds
            while (lead is None and trainer.poll() != "ready") or (
                lead is not None and time.monotonic() - began < lead
            ):
                time.sleep(0.05)
        for _ in range(args.tasks):
            arrived = time.monotonic()
            trainer.prepare(job.model_path, job.model_sha256, None if args.no_trace else rows)
            time.sleep(args.download_seconds)
            outcome = trainer.run(job, wait=time.sleep, should_stop=lambda: False)
            if not outcome.ok:
                raise RuntimeError(outcome.error)
            tasks.append(
                {"total": time.monotonic() - arrived, "fit": outcome.fit_seconds}
                | {"encode": outcome.encode_seconds}
                | outcome.timings
            )
        return {"startup": trainer.startup, "tasks": tasks}
    finally:
        trainer.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--lead-seconds", type=float, default=None)
    parser.add_argument("--at-task", action="store_true", help="start the child at the task")
    parser.add_argument("--no-trace", action="store_true", help="prepare without tracing")
    parser.add_argument("--download-seconds", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    job = digits_job(Path(tempfile.mkdtemp(prefix="daig-first-task-")))
    load_before = os.getloadavg()[0]
    runs = [one_run(job, args) for _ in range(args.repeats)]
    print(f"\n{'run':<5}{'task':<6}" + "".join(f"{c:>11}" for c in COLUMNS))
    for index, run in enumerate(runs):
        for number, task in enumerate(run["tasks"]):
            cells = "".join(f"{task.get(c, 0.0):>11.3f}" for c in COLUMNS)
            print(f"{index:<5}{number:<6}{cells}")
        print(f"     start-up: {json.dumps({k: round(v, 2) for k, v in run['startup'].items()})}")
    firsts = [run["tasks"][0]["total"] for run in runs]
    laters = [task["total"] for run in runs for task in run["tasks"][1:]]
    if laters:
        first, later = statistics.median(firsts), statistics.median(laters)
        ratio = first / later
        print(f"\nfirst task {first:.2f} s, later tasks {later:.2f} s (medians): {ratio:.2f}x")
    print(f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(json.dumps({"args": vars(args), "runs": runs}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
