"""Where the CPU goes during a DAIG run: CPU seconds of every process, training or not.

On a machine with few cores the providers' training competes with DAIG's own services for
CPU, so a round's fit is slower than the same fit alone. This runs the digits project of
``bench/versus_flower.py`` (8 shards, K=4, 5 passes, 5 epochs per task, 4 providers) and
reads each process's user+system CPU time from Linux ``/proc`` before and after: the API,
scheduler and aggregator, each provider agent, and each agent's children (the training
process). PostgreSQL and RabbitMQ serve other clients on a shared machine and are left out.

    .venv/bin/python -m bench.cpu_share
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from bench.harness import BenchCluster, bench_cluster, round_report, run_project, summarize
from daig.hyperparams import Hyperparameters

PARAMS = Hyperparameters(epochs=5, batch_size=32, total_tasks=8, task_size=4, passes=5)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError):
                continue
    return found


def snapshot(cluster: BenchCluster) -> dict[str, tuple[float, float]]:
    """Per cluster process: (its own CPU seconds, its live children's)."""
    result = {}
    for name, process in cluster.processes.processes.items():
        kids = 0.0
        for child in children(process.pid):
            try:
                kids += cpu_seconds(child)
            except OSError:
                continue
        result[name] = (cpu_seconds(process.pid), kids)
    return result


def main() -> int:
    from daig.examples import write_digits
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    files = write_digits(Path(tempfile.mkdtemp(prefix="daig-cpu-")))
    load_before = os.getloadavg()[0]
    with bench_cluster() as cluster:
        cluster.add_providers(PARAMS.task_size)
        run_project(cluster, files, Hyperparameters(epochs=1, total_tasks=4, task_size=4))
        before = snapshot(cluster)
        project_id, wall = run_project(cluster, files, PARAMS)
        after = snapshot(cluster)
        median = summarize(round_report(cluster, project_id))
    used = {
        name: {
            "own": after[name][0] - before[name][0],
            "children": after[name][1] - before[name][1],
        }
        for name in after
    }
    training = sum(u["children"] for u in used.values())
    services = sum(u["own"] for u in used.values())
    print(f"\n{PARAMS.total_tasks} shards, K={PARAMS.task_size}, 4 providers; {wall:.1f} s\n")
    print(f"{'process':<14}{'CPU s':>8}{'children CPU s':>16}")
    for name, u in used.items():
        print(f"{name:<14}{u['own']:>8.2f}{u['children']:>16.2f}")
    print(
        f"\nDAIG's own processes: {services:.2f} CPU s; training processes: {training:.2f} CPU s "
        f"({services / (services + training):.0%} of DAIG's CPU is not training); "
        f"median round {median['wall']:.2f} s, fit {median['fit']:.2f} s; "
        f"load {load_before:.1f}-{os.getloadavg()[0]:.1f}"
    )
    print(
        json.dumps(
            {
                "params": PARAMS.model_dump(),
                "wall_seconds": wall,
                "cpu_seconds": used,
                "per_round_median": median,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
