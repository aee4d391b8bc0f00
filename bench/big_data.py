"""Big data: a dataset of several GB uploaded, sharded and trained, with every process's peak RSS.

The 2021 system read whole uploads into memory, so it could not take data larger than memory.
This benchmark generates a dataset of several GB (default 1,000,000 rows x 784 float32
features = 3.1 GB, labels from a fixed random linear rule) without ever holding it in memory,
plus an MLP (784-64-10) saved as ``.h5``. It starts a real cluster (API, scheduler,
aggregator, N providers as processes on a fresh database, vhost and blob directory), uploads
everything with the real CLI as its own process (``daig project create ... --start --wait``),
trains (default 100 shards of ~31 MB, K=4, one pass: 25 rounds, each new global model
evaluated on 10,000 held-out rows by the aggregator's evaluation child) and downloads the
model with ``daig project download``.

Throughout, every process of the cluster and every process they start (each provider's
training child, the aggregator's evaluation child, multiprocessing's resource trackers) and
the CLI processes are sampled every ``--interval`` seconds: VmRSS, RssAnon, RssFile from
``/proc/<pid>/status`` and VmHWM (the kernel's own peak, so spikes between samples count too).
Also measured: upload throughput, disk used, training time, and what TensorFlow costs on its
own in a fresh process (``import tensorflow``, then the same fit in plain Keras), so the
training child's figure can be split into TensorFlow's share and DAIG's.

Everything is written under one temporary directory (``--dir``; ``TMPDIR`` of the cluster's
processes points into it) that is removed at the end unless ``--keep``.

    .venv/bin/python -m bench.big_data [--rows 1000000] [--providers 2] [--total-tasks 100]
"""

# The pieces are modules of ``bench.bigdata`` (the docstring above is the --help text):
# the load generator (``dataset``), the sampler (``memory``), TensorFlow's own cost
# (``baseline``) and the report (``report``). This module runs them against a cluster.

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.bigdata.baseline import tensorflow_baseline
from bench.bigdata.dataset import generate, in_spawned_process
from bench.bigdata.memory import (
    MB,
    DiskSampler,
    MemorySampler,
    allocated_bytes,
    mem_total_mb,
    status_mb,
)
from bench.bigdata.report import TARGET_MB, report
from bench.harness import BenchCluster, bench_cluster, round_report, summarize
from daig.hyperparams import Hyperparameters

PASSWORD_SUFFIX = "-password"  # bench.harness signs users up with "<name>-password"


def _cli(cluster: BenchCluster, *args: str) -> list[str]:
    """``python -m daig_cli project <args>`` as the requestor of ``bench.harness``."""
    return [
        sys.executable,
        "-m",
        "daig",
        "project",
        *args,
        "--server",
        cluster.api_url,
        "--user",
        "requestor",
    ]


def _run_cli(
    argv: list[str], env: dict[str, str], log: Path, sampler: MemorySampler, label: str
) -> tuple[str, float]:
    """Run a CLI command as its own process, sampled as ``label``; (stdout, seconds)."""
    began = time.perf_counter()
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler.add_root(process.pid, label)
        code = process.wait(timeout=7200)
    seconds = time.perf_counter() - began
    if code != 0:
        raise RuntimeError(
            f"{label} exited with {code}:\n{log.with_suffix('.err').read_text()[-3000:]}"
        )
    return log.with_suffix(".out").read_text(), seconds


def _wait_for_evaluation(cluster: BenchCluster, project_id: str, timeout: float = 300) -> None:
    """The aggregator evaluates rounds after they close; wait for the last one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = cluster.sql(
            "SELECT count(*) FROM rounds WHERE project_id = :p AND evaluation IS NULL",
            p=project_id,
        )[0][0]
        if pending == 0:
            return
        time.sleep(0.5)


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _project_figures(cluster: BenchCluster, project_id: str) -> dict[str, Any]:
    created, started, finished, rounds_total = cluster.sql(
        "SELECT created_at, started_at, finished_at, total_rounds FROM projects WHERE id = :p",
        p=project_id,
    )[0]
    files = {
        kind: (size, uploaded)
        for kind, size, uploaded in cluster.sql(
            "SELECT kind, size, uploaded_at FROM project_files WHERE project_id = :p",
            p=project_id,
        )
    }
    rounds = cluster.sql(
        "SELECT index, opened_at, closed_at, evaluation FROM rounds WHERE project_id = :p "
        "ORDER BY index",
        p=project_id,
    )
    results = dict(
        cluster.sql(
            "SELECT status, count(*) FROM results WHERE project_id = :p GROUP BY status",
            p=project_id,
        )
    )
    fits = [
        row[0]
        for row in cluster.sql(
            "SELECT fit_seconds FROM results WHERE project_id = :p AND status = 'accepted'",
            p=project_id,
        )
    ]
    walls, previous = [], started
    for _index, _opened, closed, _evaluation in rounds:
        walls.append(_seconds(closed, previous))
        previous = closed
    evaluations = [r[3] or {} for r in rounds]
    data_size, data_done = files["data"]
    _model_size, model_done = files["model"]
    data_seconds = _seconds(data_done, model_done)
    upload_bytes = sum(size for size, _ in files.values())
    return {
        "upload": {
            "bytes": upload_bytes,
            "data_bytes": data_size,
            "data_seconds": data_seconds,
            "data_mb_per_s": data_size / MB / data_seconds,
            "all_files_seconds": _seconds(max(u for _, u in files.values()), created),
        },
        "training": {
            "seconds": _seconds(finished, started),
            "rounds": len(rounds),
            "total_rounds": rounds_total,
            "results": results,
            "round_wall_median_s": statistics.median(walls),
            "fit_median_s": statistics.median(fits) if fits else None,
            "accuracy_by_round": [e.get("accuracy") for e in evaluations],
            "final_evaluation": evaluations[-1] if evaluations else {},
        },
    }


def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    tmp = base / "tmp"
    tmp.mkdir()
    # Every temporary file of the cluster (the API's upload spool, providers' task folders, the
    # evaluator's cache, the harness's work directory) lands under ``base`` and goes with it.
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)

    print(f"generating {args.rows:,} x {args.features} float32 rows in {base} ...", flush=True)
    dataset = generate(base / "dataset", args.rows, args.features, args.validation_rows)
    dataset_bytes = allocated_bytes(base / "dataset")
    generator_mb = status_mb()
    print(
        f"  {dataset.data.stat().st_size / MB:,.0f} MB of data in {dataset.seconds:.1f} s; "
        f"this process's peak RSS {generator_mb.get('VmHWM', 0):.0f} MB",
        flush=True,
    )
    shard_rows = args.rows // args.total_tasks
    print("measuring TensorFlow alone in a fresh process ...", flush=True)
    baseline = in_spawned_process(tensorflow_baseline, args.features, shard_rows, args.batch_size)

    params = Hyperparameters(
        epochs=args.epochs,
        batch_size=args.batch_size,
        total_tasks=args.total_tasks,
        task_size=args.task_size,
        passes=args.passes,
    )
    memory = MemorySampler(args.interval)
    disk = DiskSampler(base)
    memory.start()
    disk.start()
    with bench_cluster(scheduler_tick_seconds="0.5") as cluster:
        extra = ("--threads", str(args.threads)) if args.threads else ()
        cluster.add_providers(args.providers, *extra)
        for name, process in cluster.processes.processes.items():
            memory.add_root(process.pid, name)
        cluster.client("requestor").close()  # signs the requestor up
        env = os.environ | {
            "XDG_CONFIG_HOME": str(base / "config"),
            "PYTHONUNBUFFERED": "1",
            "DAIG_PASSWORD": "requestor" + PASSWORD_SUFFIX,  # never on a command line
        }
        argv = _cli(cluster, "create", "--name", "big-data", "--start", "--wait")
        for kind, path in dataset.files().items():
            argv += [f"--{kind.replace('_', '-')}", str(path)]
        for option, value in params.model_dump().items():
            if option in ("epochs", "batch_size", "total_tasks", "task_size", "passes"):
                argv += [f"--{option.replace('_', '-')}", str(value)]
        print(
            f"cluster up ({args.providers} providers); uploading and training with "
            f"daig project create --start --wait ...",
            flush=True,
        )
        cli_started = time.monotonic() - memory.began
        out, create_seconds = _run_cli(
            argv, env, cluster.work / "cli-create", memory, "requestor CLI: create --wait"
        )
        project_id = out.strip().splitlines()[-1]
        model_path = base / "trained.h5"
        _, download_seconds = _run_cli(
            _cli(cluster, "download", project_id, "-o", str(model_path)),
            env,
            cluster.work / "cli-download",
            memory,
            "requestor CLI: download",
        )
        _wait_for_evaluation(cluster, project_id)
        memory.sample()
        figures = _project_figures(cluster, project_id)
        started, finished = cluster.sql(
            "SELECT started_at, finished_at FROM projects WHERE id = :p", p=project_id
        )[0]
        figures["training"]["per_round_median"] = summarize(round_report(cluster, project_id))
        phases = {
            "setup": (0.0, cli_started),
            "upload": (cli_started, started.timestamp() - memory.began_wall),
            "training": (
                started.timestamp() - memory.began_wall,
                finished.timestamp() - memory.began_wall,
            ),
            "finish": (finished.timestamp() - memory.began_wall, float("inf")),
        }
        disk_now = {
            "dataset": dataset_bytes,
            "blob_store": allocated_bytes(cluster.work / "blobs"),
            "provider_shard_caches": allocated_bytes(cluster.work / "cache"),
        }
        logs = {name: cluster.processes.log(name) for name in cluster.processes.processes}
        memory.stop()
        recycled = sum(len(re.findall("training process grew", t)) for t in logs.values())
    disk.stop()

    records = memory.records()
    child_peaks = [r.peak_mb for r in records if r.label.endswith("training child")]
    import_mb = baseline["import tensorflow"]["VmRSS"]
    plain_fit_mb = max(v["VmRSS"] for k, v in baseline.items() if k.startswith("after fit"))
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "memory_mb": mem_total_mb()},
        "config": {
            "rows": args.rows,
            "features": args.features,
            "validation_rows": args.validation_rows,
            "shard_rows": shard_rows,
            "shard_mb": shard_rows * args.features * 4 / MB,
            "providers": args.providers,
            "provider_threads": args.threads,
            "params": params.model_dump(),
            "interval_s": args.interval,
        },
        "dataset": {
            "data_mb": dataset.data.stat().st_size / MB,
            "files_mb": dataset_bytes / MB,
            "generate_seconds": dataset.seconds,
            "generate_mb_per_s": dataset.data.stat().st_size / MB / dataset.seconds,
            "generator_peak_rss_mb": generator_mb.get("VmHWM"),
        },
        "project_id": project_id,
        **figures,
        "cli": {"create_start_wait_seconds": create_seconds, "download_seconds": download_seconds},
        "model_downloaded_bytes": model_path.stat().st_size,
        "disk": {
            **{k: v / MB for k, v in disk_now.items()},
            "peak_under_work_dir_mb": disk.peak_bytes / MB,
        },
        "training_children_recycled": recycled,
        "tensorflow_alone": baseline,
        "training_child_analysis": {
            "import_tensorflow_mb": import_mb,
            "plain_keras_same_fit_mb": plain_fit_mb,
            "training_child_peak_mb": max(child_peaks) if child_peaks else None,
            "daig_over_plain_keras_mb": (max(child_peaks) - plain_fit_mb) if child_peaks else None,
        },
        "phases_s": {name: [a, min(b, 1e9)] for name, (a, b) in phases.items()},
        "processes": [
            {k: v for k, v in asdict(r).items() if k not in ("timeline", "cpu_timeline")}
            | {
                "peak_mb": r.peak_mb,
                "under_target": r.peak_mb < TARGET_MB,
                "peak_by_phase_mb": {n: r.peak_between(a, b) for n, (a, b) in phases.items()},
                "cpu_by_phase_s": {n: r.cpu_between(a, b) for n, (a, b) in phases.items()},
            }
            for r in records
        ],
        "_timelines": {f"{r.label} [{r.pid}]": r.timeline for r in records},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--validation-rows", type=int, default=10_000)
    parser.add_argument("--providers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="TF threads per provider (0: all)")
    parser.add_argument("--total-tasks", type=int, default=100)
    parser.add_argument("--task-size", type=int, default=4)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--timelines", type=Path, help="write each process's RSS timeline here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="daig-bigdata-", dir=args.dir))
    try:
        result = run(args, base)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    timelines = result.pop("_timelines")
    if args.timelines:
        args.timelines.write_text(json.dumps(timelines))
    report(result)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
