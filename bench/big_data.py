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

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from bench.harness import BenchCluster, bench_cluster, round_report, summarize
from daig.hyperparams import Hyperparameters

TARGET_MB = 500.0
MB = 1024 * 1024
CLASSES = 10
HIDDEN = 64
CHUNK_ROWS = 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD_SUFFIX = "-password"  # bench.harness signs users up with "<name>-password"


# --- the dataset ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    model: Path
    data: Path
    labels: Path
    validation_data: Path
    validation_labels: Path
    rows: int
    features: int
    seconds: float  # to generate data and labels

    def files(self) -> dict[str, Path]:
        return {
            "model": self.model,
            "data": self.data,
            "labels": self.labels,
            "validation_data": self.validation_data,
            "validation_labels": self.validation_labels,
        }


def _write_npy(path: Path, dtype: np.dtype[Any], shape: tuple[int, ...]) -> Any:
    """Open ``path`` and write an ``.npy`` header for ``shape``; the caller appends the rows."""
    out = open(path, "wb")  # noqa: SIM115 - closed by the caller
    header = {
        "descr": npformat.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": shape,
    }
    npformat.write_array_header_1_0(out, header)
    return out


def _rows(rows: int, features: int, weights: np.ndarray, seed: int) -> Iterator[tuple[Any, Any]]:
    """Chunks of (x, y): x standard normal, y = argmax(x @ weights) -- a learnable rule."""
    rng = np.random.default_rng(seed)
    for start in range(0, rows, CHUNK_ROWS):
        count = min(CHUNK_ROWS, rows - start)
        x = rng.standard_normal((count, features), dtype=np.float32)
        yield x, np.argmax(x @ weights, axis=1).astype(np.int64)


def _write_arrays(data: Path, labels: Path, rows: int, features: int, seed: int) -> None:
    weights = np.random.default_rng(12345).standard_normal((features, CLASSES)).astype(np.float32)
    with (
        _write_npy(data, np.dtype(np.float32), (rows, features)) as xs,
        _write_npy(labels, np.dtype(np.int64), (rows,)) as ys,
    ):
        for x, y in _rows(rows, features, weights, seed):
            x.tofile(xs)
            y.tofile(ys)


def _write_model(path: str, features: int) -> None:
    """Runs in a spawned process, so the benchmark itself never imports TensorFlow."""
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(features,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.save(path)


def generate(directory: Path, rows: int, features: int, validation_rows: int) -> Dataset:
    """Write the dataset chunk by chunk (never more than ``CHUNK_ROWS`` rows in memory)."""
    directory.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    files = {k: directory / f"{k}.npy" for k in ("x", "y", "val-x", "val-y")}
    _write_arrays(files["x"], files["y"], rows, features, seed=1)
    seconds = time.perf_counter() - began
    _write_arrays(files["val-x"], files["val-y"], validation_rows, features, seed=2)
    model = directory / f"mlp-{features}-{HIDDEN}-{CLASSES}.h5"
    _in_spawned_process(_write_model, str(model), features)
    return Dataset(
        model, files["x"], files["y"], files["val-x"], files["val-y"], rows, features, seconds
    )


def _in_spawned_process(target: Any, *args: Any) -> Any:
    """Run ``target(*args, pipe)`` or ``target(*args)`` in a fresh interpreter; its reply."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_call_and_reply, args=(target, args, child))
    process.start()
    child.close()
    try:
        reply = parent.recv()
    except EOFError as exc:
        raise RuntimeError(f"{target.__name__} died (exit {process.exitcode})") from exc
    finally:
        process.join()
    if isinstance(reply, BaseException):
        raise reply
    return reply


def _call_and_reply(target: Any, args: tuple[Any, ...], pipe: Any) -> None:
    try:
        pipe.send(target(*args))
    except BaseException as exc:
        pipe.send(RuntimeError(f"{type(exc).__name__}: {exc}"))


# --- what TensorFlow costs by itself -------------------------------------------------------


def _status_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem of a process, in MB (empty if it is gone)."""
    values: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    values[name] = int(rest.split()[0]) / 1024
    except (OSError, ValueError):
        return {}
    try:  # PSS: shared pages (TensorFlow's libraries) split between the processes mapping them
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    values["Pss"] = int(line.split()[1]) / 1024
                    break
    except (OSError, ValueError):
        pass
    return values


def _tensorflow_baseline(features: int, shard_rows: int, batch_size: int) -> dict[str, Any]:
    """In a fresh process: RSS after ``import tensorflow``, then a plain-Keras fit of a shard."""
    stages: dict[str, Any] = {"start": _status_mb()}
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    stages["import tensorflow"] = _status_mb()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(features,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stages["model built and compiled"] = _status_mb()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shard_rows, features), dtype=np.float32)
    y = rng.integers(0, CLASSES, shard_rows)
    stages["one shard in memory"] = _status_mb()
    for task in range(3):
        model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
        stages[f"after fit #{task + 1}"] = _status_mb()
    return stages


# --- sampling every process's memory -------------------------------------------------------


@dataclass
class ProcessMemory:
    label: str
    pid: int
    cmdline: str
    first_seen: float
    last_seen: float = 0.0
    samples: int = 0
    peak_rss_mb: float = 0.0
    peak_anon_mb: float = 0.0
    peak_pss_mb: float = 0.0
    file_at_peak_mb: float = 0.0
    hwm_mb: float = 0.0  # VmHWM: the kernel's peak RSS, last read while the process lived
    cpu_s: float = 0.0  # user + system CPU seconds, at the last sample
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, VmRSS MB)
    cpu_timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, CPU s)

    def observe(self, at: float, values: dict[str, float], cpu: float) -> None:
        rss = values.get("VmRSS", 0.0)
        if not self.cpu_timeline or cpu - self.cpu_timeline[-1][1] >= 0.1:
            self.cpu_timeline.append((round(at, 2), round(cpu, 2)))
        self.cpu_s = cpu
        self.samples += 1
        self.last_seen = at
        self.hwm_mb = max(self.hwm_mb, values.get("VmHWM", 0.0))
        self.peak_anon_mb = max(self.peak_anon_mb, values.get("RssAnon", 0.0))
        self.peak_pss_mb = max(self.peak_pss_mb, values.get("Pss", 0.0))
        if rss >= self.peak_rss_mb:
            self.peak_rss_mb = rss
            self.file_at_peak_mb = values.get("RssFile", 0.0) + values.get("RssShmem", 0.0)
        if not self.timeline or abs(self.timeline[-1][1] - rss) >= 1.0:
            self.timeline.append((round(at, 2), round(rss, 1)))

    @property
    def peak_mb(self) -> float:
        return max(self.peak_rss_mb, self.hwm_mb)

    def peak_between(self, start: float, end: float) -> float | None:
        """Highest sampled VmRSS in [start, end) (within 1 MB), None if not alive then."""
        if self.last_seen < start or self.first_seen >= end:
            return None
        carried = [rss for at, rss in self.timeline if at <= start][-1:]
        inside = [rss for at, rss in self.timeline if start < at < end]
        return max(carried + inside) if carried + inside else None

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used in [start, end) (within 0.1 s)."""

        def at(moment: float) -> float:
            return max([cpu for when, cpu in self.cpu_timeline if when <= moment], default=0.0)

        return max(0.0, min(at(end), self.cpu_s) - at(start))


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, start time, CPU seconds) of every process on the machine."""
    table: dict[int, tuple[int, str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        table[int(entry.name)] = (int(fields[1]), fields[19], cpu)
    return table


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            return stream.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _child_kind(parent_label: str, cmdline: str) -> str:
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "daig.sandbox" in cmdline or "multiprocessing" in cmdline:
        if parent_label.startswith("provider"):
            return "training child"
        if parent_label == "aggregator":
            return "evaluation child"
        return "spawned child"
    return Path(cmdline.split(" ", 1)[0]).name or "child"


class MemorySampler(threading.Thread):
    """Samples the roots it is given and all their descendants until ``stop()``."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.interval = interval
        self.began = time.monotonic()
        self.began_wall = time.time()
        self._roots: dict[int, str] = {}
        self._seen: dict[tuple[int, str], ProcessMemory] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add_root(self, pid: int, label: str) -> None:
        with self._lock:
            self._roots[pid] = label
        self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        with self._lock:
            table = _proc_table()
            at = time.monotonic() - self.began
            for pid, label in self._tracked(table).items():
                key = (pid, table[pid][1])
                values = _status_mb(pid)
                if not values:
                    continue
                record = self._seen.get(key)
                if record is None:
                    record = self._seen[key] = ProcessMemory(label, pid, _cmdline(pid)[:200], at)
                record.observe(at, values, table[pid][2])

    def _tracked(self, table: dict[int, tuple[int, str, float]]) -> dict[int, str]:
        """Every live root and descendant, labelled by its nearest root ('api > ...')."""
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        tracked: dict[int, str] = {}
        stack = [(pid, label) for pid, label in self._roots.items() if pid in table]
        while stack:
            pid, label = stack.pop()
            tracked[pid] = label
            for child in children.get(pid, []):
                if child in self._roots:
                    continue
                known = next((r.label for k, r in self._seen.items() if k[0] == child), None)
                child_label = known or f"{label} > {_child_kind(label, _cmdline(child))}"
                stack.append((child, child_label))
        return tracked

    def records(self) -> list[ProcessMemory]:
        with self._lock:
            records = sorted(self._seen.values(), key=lambda r: (r.label, r.first_seen))
        counts: dict[str, int] = {}
        labelled = []
        for record in records:  # a recycled training child is "... #2"
            counts[record.label] = counts.get(record.label, 0) + 1
            count = counts[record.label]
            labelled.append(
                replace(record, label=f"{record.label} #{count}" if count > 1 else record.label)
            )
        return labelled


class DiskSampler(threading.Thread):
    """The peak space allocated under a directory, checked every ``interval`` seconds."""

    def __init__(self, root: Path, interval: float = 1.0) -> None:
        super().__init__(name="disk-sampler", daemon=True)
        self.root, self.interval = root, interval
        self.peak_bytes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_bytes = max(self.peak_bytes, allocated_bytes(self.root))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.peak_bytes = max(self.peak_bytes, allocated_bytes(self.root))


def allocated_bytes(root: Path) -> int:
    """Space the files under ``root`` take on disk (st_blocks), tolerating files that vanish."""
    total = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


# --- the run -------------------------------------------------------------------------------


def _cli(cluster: BenchCluster, *args: str) -> list[str]:
    """``python -m daig project <args>`` as the requestor of ``bench.harness``."""
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
        "--password",
        "requestor" + PASSWORD_SUFFIX,
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
    generator_mb = _status_mb()
    print(
        f"  {dataset.data.stat().st_size / MB:,.0f} MB of data in {dataset.seconds:.1f} s; "
        f"this process's peak RSS {generator_mb.get('VmHWM', 0):.0f} MB",
        flush=True,
    )
    shard_rows = args.rows // args.total_tasks
    print("measuring TensorFlow alone in a fresh process ...", flush=True)
    baseline = _in_spawned_process(_tensorflow_baseline, args.features, shard_rows, args.batch_size)

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
        env = os.environ | {"XDG_CONFIG_HOME": str(base / "config"), "PYTHONUNBUFFERED": "1"}
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
        "machine": {"cpus": os.cpu_count(), "memory_mb": _mem_total_mb()},
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


def _mem_total_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        return int(meminfo.readline().split()[1]) / 1024


def report(result: dict[str, Any]) -> None:
    config, up, train = result["config"], result["upload"], result["training"]
    print(
        f"\nbig data, {result['date']}: {config['rows']:,} x {config['features']} float32 "
        f"({result['dataset']['data_mb']:,.0f} MB), {config['params']['total_tasks']} shards "
        f"of {config['shard_rows']:,} rows ({config['shard_mb']:.1f} MB), "
        f"K={config['params']['task_size']}, {config['params']['passes']} pass(es), "
        f"{config['params']['epochs']} epoch(s), batch {config['params']['batch_size']}, "
        f"{config['providers']} providers, {result['machine']['cpus']} CPUs\n"
    )
    phases = list(result["phases_s"])
    header = (
        f"{'process':<38}{'peak RSS':>9}{'VmHWM':>7}{'anon':>6}{'file':>6}{'PSS':>6}"
        + "".join(f"{name:>9}" for name in phases)
        + f"{'CPU s':>7}  <{TARGET_MB:.0f}"
    )
    print(header)
    print("-" * len(header))
    for p in result["processes"]:
        by_phase = p["peak_by_phase_mb"]
        print(
            f"{p['label'][:37]:<38}{p['peak_rss_mb']:>9.0f}{p['hwm_mb']:>7.0f}"
            f"{p['peak_anon_mb']:>6.0f}{p['file_at_peak_mb']:>6.0f}{p['peak_pss_mb']:>6.0f}"
            + "".join(
                f"{'-' if by_phase[n] is None else format(by_phase[n], '.0f'):>9}" for n in phases
            )
            + f"{p['cpu_s']:>7.1f}  {'yes' if p['under_target'] else 'NO'}"
        )
    print(
        "(MB = 2**20 bytes. peak RSS: highest sampled VmRSS; VmHWM: the kernel's peak RSS; "
        "anon: peak RssAnon, private memory; file: file-backed RSS at the peak, mostly shared "
        "libraries; PSS: peak proportional set size (shared pages divided among the "
        "processes that map them); then the peak VmRSS in each phase; CPU s: user + system "
        "CPU seconds. "
        "Phases: "
        + ", ".join(
            f"{n} {a:.0f}-{'end' if b >= 1e9 else format(b, '.0f')} s"
            for n, (a, b) in result["phases_s"].items()
        )
        + ")"
    )
    over = [p for p in result["processes"] if not p["under_target"]]
    print(
        f"\n{len(result['processes']) - len(over)} of {len(result['processes'])} processes "
        f"under {TARGET_MB:.0f} MB"
        + (f"; over: {', '.join(p['label'] for p in over)}" if over else "")
    )
    if over:
        print(
            "  of those, private memory (anon) peaks: "
            + ", ".join(f"{p['label']} {p['peak_anon_mb']:.0f} MB" for p in over)
        )
    tf, child = result["tensorflow_alone"], result["training_child_analysis"]
    print(
        "\nTensorFlow alone, fresh process (MB): "
        + "; ".join(
            f"{stage} {values['VmRSS']:.0f} (anon {values['RssAnon']:.0f})"
            for stage, values in tf.items()
        )
    )
    if child["training_child_peak_mb"] is not None:
        print(
            f"training child peak {child['training_child_peak_mb']:.0f} MB = import tensorflow "
            f"{child['import_tensorflow_mb']:.0f} + plain-Keras fit of one shard "
            f"{child['plain_keras_same_fit_mb'] - child['import_tensorflow_mb']:.0f} + DAIG "
            f"{child['daig_over_plain_keras_mb']:+.0f}"
        )
    print(
        f"\nupload: {up['bytes'] / MB:,.0f} MB in {up['all_files_seconds']:.1f} s; the data file "
        f"{up['data_bytes'] / MB:,.0f} MB in {up['data_seconds']:.1f} s = "
        f"{up['data_mb_per_s']:.0f} MB/s (streamed, hashed, checked, stored)"
    )
    start, end = result["phases_s"]["upload"]
    busy = {
        p["label"]: p["cpu_by_phase_s"]["upload"]
        for p in result["processes"]
        if p["label"] in ("api", "requestor CLI: create --wait")
    }
    print(
        f"  CPU busy during the {end - start:.0f} s upload phase: "
        + ", ".join(
            f"{label} {cpu:.1f} s ({cpu / (end - start):.0%})" for label, cpu in busy.items()
        )
    )
    accuracy = train["final_evaluation"].get("accuracy")
    print(
        f"training: {train['seconds']:.1f} s, {train['rounds']} rounds (median "
        f"{train['round_wall_median_s']:.2f} s, fit median {train['fit_median_s']:.2f} s), "
        f"results {train['results']}\n  per round (median): "
        + ", ".join(f"{k} {v:.2f}" for k, v in train["per_round_median"].items())
        + f"\n  held-out accuracy after round 0: {train['accuracy_by_round'][0]}, "
        f"final: {accuracy}"
    )
    disk = result["disk"]
    print(
        f"disk: dataset {disk['dataset']:,.0f} MB, blob store {disk['blob_store']:,.0f} MB, "
        f"provider shard caches {disk['provider_shard_caches']:,.0f} MB; peak under the work "
        f"directory {disk['peak_under_work_dir_mb']:,.0f} MB (removed afterwards)"
    )
    print(
        f"CLI: create --start --wait {result['cli']['create_start_wait_seconds']:.1f} s, "
        f"download {result['cli']['download_seconds']:.1f} s"
    )


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
