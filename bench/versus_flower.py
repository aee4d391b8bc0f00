"""DAIG versus Flower: the same FedAvg work, time per round and final accuracy side by side.

Both systems train the digits MLP (``daig.examples.write_digits``: the same compiled ``.h5``
gives every system its starting weights) on the same shards (``daig.planning.Plan``: shard
*i* is rows ``[i*N//T, (i+1)*N//T)``, round *r* trains shards ``(r*K + j) mod T``), with K
clients, the same local epochs, batch size and rounds, and combine each round's K results
by the sample-weighted mean (DAIG: ``w + mean of deltas``; Flower's FedAvg: mean of weights,
the same number). Every task starts from the round's global weights with the optimizer reset
to its just-compiled state (``FreshOptimizer``, as DAIG's training child does).

Everything runs as real processes on loopback, one system at a time:

- **DAIG**: API, scheduler, aggregator and K providers on a fresh database, vhost and blob
  directory (``bench/harness.py``), warmed up by a tiny project first (as
  ``bench/time_to_accuracy.py`` does). Per round: from the previous round's close to this
  one's, from the database, with ``round_report``'s breakdown.
- **Flower, long-lived clients** (``bench/flower/legacy.py``): ``start_server`` and K
  ``start_client`` processes over gRPC; each client keeps TensorFlow and the model loaded.
  Deprecated by Flower since 1.13 but the closest to how DAIG's providers work.
- **Flower, Deployment Runtime** (``bench/flower/server_app.py``, ``client_app.py``): one
  ``flower-superlink``, K ``flower-supernode`` processes and ``flwr run`` of a Flower App
  built here, the way Flower documents deployments today. A SuperNode starts a
  ``flwr-clientapp`` process for every message, so each round imports TensorFlow anew.

For Flower the server takes a timestamp before round 1 and after each round's aggregation;
a round's time is the difference. For every system the first round is left out (processes
warming up) and the median of the others is reported. Final accuracy is measured on
digits' held-out rows from the final global weights, next to the same K-batch SGD run in
one process (``daig/reference.py``). The target: DAIG's time per round <= Flower's for the
same work, with final accuracy within 1 point.

    .venv/bin/python -m bench.versus_flower [--clients 4] [--shards 8] [--epochs 5]
        [--batch-size 32] [--passes 5] [--flower legacy deployment] [--skip-daig]
        [--skip-flower] [--repeats 1] [--cold-start] [--provider-lead-seconds 10]

With ``--cold-start`` DAIG runs without the warm-up project: its providers start
``--provider-lead-seconds`` before the project is created, so round 0 shows what a provider's
first task costs (the training process warms up when the agent starts; the first task still
loads and traces its model). Every DAIG run prints round 0's wall time next to the median of
the other rounds, and their ratio (target: at most 2x).

With ``--repeats N`` DAIG and long-lived Flower run N times each, alternating (the machine's
load changes while other work runs on it); the verdict compares the median of their runs'
median rounds and their mean accuracy. The Deployment Runtime runs once.

Flower is an optional dependency (``pip install -e '.[bench]'``, then ``flwr`` itself
with ``--no-deps``: see ``bench/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.flower.task import Work
from bench.harness import (
    CHILD_PHASES,
    PHASES,
    BenchCluster,
    bench_cluster,
    round_report,
    run_project,
    summarize,
)
from daig.examples import DigitsFiles
from daig.hyperparams import Hyperparameters
from daig_cli.processes import ProcessGroup, free_port

FLWR_VERSION = "1.42.0"
FLOWER_DIR = Path(__file__).parent / "flower"
FLOWER_ENV = {
    "PYTHONPATH": str(FLOWER_DIR.parent.parent),  # `python -m bench.flower.legacy` anywhere
    "FLWR_TELEMETRY_ENABLED": "0",  # no event reporting to Flower's servers
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONUNBUFFERED": "1",
}
MODES = {
    "legacy": "Flower, long-lived clients",
    "deployment": "Flower, Deployment Runtime",
}
INSTALL_HINT = (
    "Flower is not installed. Install it into this virtualenv with:\n"
    "    .venv/bin/pip install -e '.[bench]'\n"
    f"    .venv/bin/pip install --no-deps flwr=={FLWR_VERSION}\n"
    f"(flwr {FLWR_VERSION} pins typer, rich, fastapi, uvicorn, starlette, protobuf and\n"
    "packaging below DAIG's own pins, so pip cannot resolve it together with DAIG; the\n"
    "'bench' extra holds the dependencies it needs that DAIG does not already have.)"
)


# --- shared ---------------------------------------------------------------------------------


def round_walls(stamps: Sequence[float]) -> list[float]:
    """Per-round wall times from a timestamp before round 1 and one after every round."""
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def median_after_first(values: Sequence[float]) -> float:
    return statistics.median(values[1:] if len(values) > 1 else values)


def weights_accuracy(files: DigitsFiles, weights: Sequence[np.ndarray]) -> float:
    """Held-out accuracy of ``weights`` (canonical order) put into the model file's model."""
    from daig.modelfile.keras_load import canonical_weights, load_model
    from daig.reference import accuracy

    model, _ = load_model(files.model)
    for variable, value in zip(canonical_weights(model), weights, strict=True):
        variable.assign(value)
    x = np.load(files.test_data, allow_pickle=False)
    y = np.load(files.test_labels, allow_pickle=False)
    return accuracy(model, x, y)


def load_average() -> float:
    return os.getloadavg()[0]


# --- DAIG -----------------------------------------------------------------------------------


def warm_up(cluster: BenchCluster, files: DigitsFiles, clients: int) -> None:
    """One tiny project first, so every provider's training process has imported TensorFlow."""
    run_project(
        cluster,
        files,
        Hyperparameters(epochs=1, total_tasks=clients, task_size=clients),
        name="warm-up",
    )


def dispatch_split(cluster: BenchCluster, project_id: str) -> list[dict[str, float]]:
    """Each round's dispatch, split: the previous round's close to the first of its task
    messages published (aggregator event, scheduler), and from the last one published to the
    last claim (broker delivery, the provider's claim call to the API)."""
    rows = cluster.sql(
        "SELECT r.index, p.closed_at, min(t.dispatched_at), max(t.dispatched_at), "
        "max(c.claimed_at) FROM rounds r "
        "JOIN rounds p ON p.project_id = r.project_id AND p.index = r.index - 1 "
        "JOIN tasks t ON t.project_id = r.project_id AND t.round_index = r.index "
        "JOIN claims c ON c.task_id = t.id "
        "WHERE r.project_id = :p GROUP BY r.index, p.closed_at ORDER BY r.index",
        p=project_id,
    )
    return [
        {
            "round": index,
            "close_to_published": (first - closed).total_seconds(),
            "publishing": (last - first).total_seconds(),
            "published_to_claimed": (claimed - last).total_seconds(),
        }
        for index, closed, first, last, claimed in rows
    ]


def daig_run(
    files: DigitsFiles, work: Work, *, cold_start: bool = False, provider_lead: float = 10.0
) -> dict[str, Any]:
    """One DAIG run; ``cold_start``: no warm-up project, providers started ``provider_lead``
    seconds before the project."""
    from daig.examples import held_out_accuracy

    params = Hyperparameters(
        epochs=work.epochs,
        batch_size=work.batch_size,
        total_tasks=work.total_shards,
        task_size=work.clients,
        passes=work.passes,
    )
    load_before = load_average()
    with bench_cluster() as cluster:
        cluster.add_providers(work.clients)
        if cold_start:
            time.sleep(provider_lead)  # from the last provider's start to the project's
        else:
            warm_up(cluster, files, work.clients)
        project_id, wall = run_project(cluster, files, params)
        report = round_report(cluster, project_id)
        split = dispatch_split(cluster, project_id)
        model = cluster.work / "trained.h5"
        cluster.client("requestor").download_model(project_id, model)
        accuracy = held_out_accuracy(model, files.test_data, files.test_labels)
    walls = [r["wall"] for r in report]
    return {
        "system": "DAIG",
        "cold_start": cold_start,
        "provider_lead_seconds": provider_lead if cold_start else None,
        "round0": report[0] if report else {},
        "rounds": len(report),
        "round_seconds": walls,
        "median_round": median_after_first(walls),
        "total_seconds": wall,
        "accuracy": accuracy,
        "load": [load_before, load_average()],
        "phases_median": summarize(report),
        "dispatch_median": {
            k: statistics.median(r[k] for r in split) for k in split[0] if k != "round"
        }
        if split
        else {},
        "logs": str(cluster.work / "logs"),
        "per_round": report,
        "dispatch_per_round": split,
    }


# --- Flower ---------------------------------------------------------------------------------


def flower_result(
    mode: str, files: DigitsFiles, out: Path, wall: float, load_before: float
) -> dict[str, Any]:
    rounds = json.loads((out / "rounds.json").read_text())
    walls = round_walls(rounds["stamps"])
    with np.load(out / "final.npz") as final:
        weights = [final[f"arr_{i}"] for i in range(len(final.files))]
    clients = rounds["clients"]
    breakdown: dict[str, list[float]] = {
        "slowest_fit": [max(c["fit-seconds"] for c in r) for r in clients],
    }
    if mode == "deployment":
        breakdown["slowest_setup"] = [max(c["setup-seconds"] for c in r) for r in clients]
        breakdown["slowest_process"] = [max(c["process-seconds"] for c in r) for r in clients]
    return {
        "system": MODES[mode],
        "rounds": len(walls),
        "round_seconds": walls,
        "median_round": median_after_first(walls),
        "total_seconds": wall,
        "accuracy": weights_accuracy(files, weights),
        "load": [load_before, load_average()],
        "clients_median": {k: median_after_first(v) for k, v in breakdown.items()},
        "clients_per_round": breakdown,
    }


def wait_for(cluster: ProcessGroup, name: str, timeout: float, watch: Sequence[str] = ()) -> None:
    """Wait for process ``name`` to exit 0; fail early if it or a watched one dies."""
    deadline = time.monotonic() + timeout
    process = cluster.processes[name]
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if process.returncode != 0:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n{cluster.log(name)[-3000:]}"
                )
            return
        for other in watch:
            if cluster.processes[other].poll() is not None:
                raise RuntimeError(f"{other} died:\n{cluster.log(other)[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{name} did not finish in {timeout} s:\n{cluster.log(name)[-3000:]}")


def legacy_run(files: DigitsFiles, work: Work, root: Path, timeout: float) -> dict[str, Any]:
    out = root / "legacy"
    out.mkdir(parents=True)
    work_file = out / "work.json"
    work_file.write_text(json.dumps(work.as_config()))
    address = f"127.0.0.1:{free_port()}"
    module = [sys.executable, "-m", "bench.flower.legacy"]
    common = ["--address", address, "--work", str(work_file)]
    cluster = ProcessGroup(FLOWER_ENV, out / "logs")
    load_before = load_average()
    began = time.perf_counter()
    try:
        cluster.start_argv("server", [*module, "server", *common, "--out", str(out)])
        clients = [f"client{j}" for j in range(work.clients)]
        for slot, name in enumerate(clients):
            cluster.start_argv(name, [*module, "client", *common, "--slot", str(slot)])
        wait_for(cluster, "server", timeout, watch=clients)
        wall = time.perf_counter() - began
    finally:
        cluster.stop_all()
    return flower_result("legacy", files, out, wall, load_before)


APP_PYPROJECT = """\
[project]
name = "daigflwr"
version = "1.0.0"
description = "DAIG versus Flower: the benchmark's Flower App"
dependencies = []

[tool.flwr.app]
publisher = "daig-bench"

[tool.flwr.app.components]
serverapp = "daigflwr.server_app:app"
clientapp = "daigflwr.client_app:app"

[tool.flwr.app.config]
{config}
"""


def build_app(directory: Path, work: Work, out: Path) -> None:
    """A Flower App directory: our ServerApp/ClientApp modules and their run config."""
    package = directory / "daigflwr"
    package.mkdir(parents=True)
    for name in ("task.py", "client_app.py", "server_app.py"):
        shutil.copy(FLOWER_DIR / name, package / name)
    (package / "__init__.py").write_text('"""DAIG versus Flower benchmark app."""\n')
    config = work.as_config() | {"out-dir": str(out)}
    (directory / "pyproject.toml").write_text(
        APP_PYPROJECT.format(config="\n".join(f"{k} = {json.dumps(v)}" for k, v in config.items()))
    )


def deployment_run(files: DigitsFiles, work: Work, root: Path, timeout: float) -> dict[str, Any]:
    out = root / "deployment"
    out.mkdir()
    home = out / "flwr-home"
    home.mkdir()
    port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    build_app(out / "app", work, out)
    bin_dir = Path(sys.executable).parent
    # The SuperLink and SuperNodes start flower-superexec (and flwr-serverapp, flwr-clientapp)
    # from PATH.
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    cluster = ProcessGroup(FLOWER_ENV | {"FLWR_HOME": str(home), "PATH": path}, out / "logs")
    load_before = load_average()
    try:
        cluster.start_argv(
            "superlink",
            [
                str(bin_dir / "flower-superlink"),
                "--insecure",
                "--port",
                str(port),
                "--disable-runtime-dependency-installation",  # the venv has everything
            ],
        )
        nodes = [f"supernode{j}" for j in range(work.clients)]
        for slot, name in enumerate(nodes):
            cluster.start_argv(
                name,
                [
                    str(bin_dir / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    f"partition-id={slot} num-partitions={work.clients}",
                ],
            )
        wait_for_nodes(cluster, work.clients, timeout=120)
        began = time.perf_counter()
        cluster.start_argv(
            "run", [str(bin_dir / "flwr"), "run", str(out / "app"), "bench", "--stream"]
        )
        wait_for(cluster, "run", timeout, watch=["superlink", *nodes])
        wall = time.perf_counter() - began
        if not (out / "rounds.json").exists():
            raise RuntimeError(f"the Flower run wrote no results:\n{cluster.log('run')[-3000:]}")
    finally:
        cluster.stop_all()
    return flower_result("deployment", files, out, wall, load_before)


def wait_for_nodes(cluster: ProcessGroup, count: int, timeout: float) -> None:
    """Until the SuperLink has activated ``count`` SuperNodes (from its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.log("superlink").count("[Fleet.ActivateNode] Activated") >= count:
            return
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{cluster.log(name)[-3000:]}")
        time.sleep(0.3)
    raise TimeoutError(f"{count} SuperNodes did not connect in {timeout} s")


# --- report ---------------------------------------------------------------------------------


def reference_accuracy(files: DigitsFiles, work: Work) -> float:
    from daig.reference import reference_accuracy as run

    params = Hyperparameters(
        epochs=work.epochs,
        batch_size=work.batch_size,
        total_tasks=work.total_shards,
        task_size=work.clients,
        passes=work.passes,
    )
    return run(
        files.model,
        np.load(files.data),
        np.load(files.labels),
        np.load(files.test_data),
        np.load(files.test_labels),
        params,
    )


def first_round(run: dict[str, Any]) -> dict[str, float]:
    """Round 0's wall time against the median of the others (target: at most 2x)."""
    walls = run["round_seconds"]
    return {"round0": walls[0], "median_others": run["median_round"]} | {
        "ratio": walls[0] / run["median_round"] if run["median_round"] else float("nan")
    }


def print_first_round(runs: list[dict[str, Any]]) -> None:
    """Per DAIG run: round 0 vs the median of the other rounds, and round 0's breakdown."""
    print("\nDAIG round 0 vs the median of rounds 1..R-1 (target: round 0 <= 2x):")
    for run in runs:
        first = first_round(run)
        start = (
            f"cold start, providers started {run['provider_lead_seconds']:.0f} s before"
            if run.get("cold_start")
            else "after a warm-up project"
        )
        verdict = "MET" if first["ratio"] <= 2 else "NOT MET"
        print(
            f"  {start}: round 0 {first['round0']:.2f} s, median {first['median_others']:.2f} s, "
            f"{first['ratio']:.2f}x -> {verdict}"
        )
        zero = run.get("round0") or {}
        parts = ", ".join(
            f"{k} {zero[k]:.3f}" for k in (*PHASES, *CHILD_PHASES) if zero.get(k) is not None
        )
        print(f"    round 0 along its critical path: {parts}")


def print_report(work: Work, runs: list[dict[str, Any]], reference: float) -> dict[str, Any]:
    print(
        f"\ndigits, {work.total_shards} shards, K={work.clients} clients, {work.rounds} rounds "
        f"({work.passes} passes), {work.epochs} local epochs, batch {work.batch_size}; "
        f"{os.cpu_count()} cores\n"
    )
    print(
        f"{'system':<30}{'median round s':>15}{'min':>7}{'max':>7}{'total s':>9}"
        f"{'accuracy':>10}{'load':>12}"
    )
    for run in runs:
        measured = run["round_seconds"][1:] or run["round_seconds"]
        load = "{:.1f}-{:.1f}".format(*run["load"])
        print(
            f"{run['system']:<30}{run['median_round']:>15.2f}{min(measured):>7.2f}"
            f"{max(measured):>7.2f}{run['total_seconds']:>9.1f}{run['accuracy']:>10.4f}"
            f"{load:>12}"
        )
    print(f"{'same K-batch SGD, one process':<30}{'':>15}{'':>7}{'':>7}{'':>9}{reference:>10.4f}")
    print("(round times: median of rounds 2..R; load: 1-minute load average before-after)")

    daig = next((r for r in runs if r["system"] == "DAIG"), None)
    by_system: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_system.setdefault(run["system"], []).append(run)
    if any(len(v) > 1 for v in by_system.values()):
        print("\nover the repeats (median of the runs' median round; mean accuracy):")
        for system, group in by_system.items():
            print(
                f"{system:<30}{statistics.median(r['median_round'] for r in group):>15.2f}"
                f"{statistics.mean(r['accuracy'] for r in group):>10.4f}  ({len(group)} runs)"
            )
    if daig:
        m = daig["phases_median"]
        print("\nDAIG per round (median, round 0 left out), seconds:")
        print(f"{'wall':>7}" + "".join(f"{p:>12}" for p in PHASES) + f"{'slowest fit':>13}")
        print(f"{m['wall']:>7.2f}" + "".join(f"{m[p]:>12.3f}" for p in PHASES), end="")
        print(f"{m['slowest_fit']:>13.3f}")
        parts = ", ".join(f"{k} {v:.3f}" for k, v in daig["dispatch_median"].items())
        print(f"DAIG dispatch, split (median of rounds 1..R-1): {parts}")
        print_first_round(by_system["DAIG"])
    for run in runs:
        if "clients_median" in run:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in run["clients_median"].items())
            print(f"{run['system']} per round (median): {parts}")

    verdicts = []
    if daig:
        daig_round = statistics.median(r["median_round"] for r in by_system["DAIG"])
        daig_accuracy = statistics.mean(r["accuracy"] for r in by_system["DAIG"])
        for system, group in by_system.items():
            if system == "DAIG":
                continue
            run = {
                "system": system,
                "median_round": statistics.median(r["median_round"] for r in group),
                "accuracy": statistics.mean(r["accuracy"] for r in group),
            }
            ratio = daig_round / run["median_round"]
            points = 100 * (daig_accuracy - run["accuracy"])
            met = ratio <= 1 and abs(points) <= 1
            verdicts.append(
                {
                    "versus": run["system"],
                    "time_ratio": ratio,
                    "accuracy_points": points,
                    "meets_target": met,
                }
            )
            print(
                f"\nvs {run['system']}: DAIG {daig_round:.2f} s vs "
                f"{run['median_round']:.2f} s per round ({ratio:.2f}x), accuracy "
                f"{points:+.1f} points -> target (time <= Flower's, accuracy within 1 point) "
                f"{'MET' if met else 'NOT MET'}"
            )
    return {
        "work": work.as_config() | {"rounds": work.rounds},
        "cores": os.cpu_count(),
        "reference_accuracy": reference,
        "runs": [
            {k: v for k, v in r.items() if k not in ("per_round", "dispatch_per_round")}
            for r in runs
        ],
        "target": verdicts,
        "first_round": [first_round(r) for r in runs if r["system"] == "DAIG"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4, help="K: clients = tasks per round")
    parser.add_argument("--shards", type=int, default=8, help="T: shards")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=5, help="rounds = passes * ceil(T/K)")
    parser.add_argument("--flower", nargs="*", choices=list(MODES), default=list(MODES))
    parser.add_argument("--skip-daig", action="store_true")
    parser.add_argument("--skip-flower", action="store_true", help="DAIG only (no flwr needed)")
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="DAIG without the warm-up project: providers start --provider-lead-seconds "
        "before the project",
    )
    parser.add_argument("--provider-lead-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=1800, help="per Flower run, seconds")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of DAIG and long-lived Flower, alternating"
    )
    args = parser.parse_args()
    if args.skip_flower:
        args.flower = []
    if args.flower:
        try:
            import flwr
        except ImportError:
            print(INSTALL_HINT, file=sys.stderr)
            return 2
        if flwr.__version__ != FLWR_VERSION:
            print(f"note: measured with flwr {flwr.__version__}, written for {FLWR_VERSION}")

    from daig.examples import write_digits
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    root = Path(tempfile.mkdtemp(prefix="daig-vs-flower-"))
    files = write_digits(root / "digits")
    work = Work(
        model=str(files.model),
        data=str(files.data),
        labels=str(files.labels),
        total_shards=args.shards,
        clients=args.clients,
        epochs=args.epochs,
        batch_size=args.batch_size,
        passes=args.passes,
    )
    runs: list[dict[str, Any]] = []
    # DAIG and long-lived Flower alternate, so both see the same machine load on average.
    for repeat in range(args.repeats):
        if not args.skip_daig:
            runs.append(
                daig_run(
                    files,
                    work,
                    cold_start=args.cold_start,
                    provider_lead=args.provider_lead_seconds,
                )
            )
        if "legacy" in args.flower:
            runs.append(legacy_run(files, work, root / f"r{repeat}", args.timeout))
    if "deployment" in args.flower:
        runs.append(deployment_run(files, work, root, args.timeout))
    result = print_report(work, runs, reference_accuracy(files, work))
    print(json.dumps(result, indent=2, default=str))
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
