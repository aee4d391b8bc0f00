"""A step's figures: the generator's window, the sampler's samples and the database, combined.

CPU is given in % of one core per component: ``api``, ``scheduler``, ``aggregator`` (each the
sum over the cluster's processes of that role, children included), ``postgres`` (this
database's backends plus the processes all databases share), ``rabbitmq``, ``generator`` and
``sampler`` (the benchmark's own). Server CPU per accepted task is everything but the last two.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.dispatch.config import Config, barrier_ceiling
from bench.dispatch.recorder import BUSY_STATES, Recorder, Window
from bench.dispatch.sampler import Sample, role_of
from bench.harness import BenchCluster

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BENCH = ("generator", "sampler")
COMPONENTS = ("api", "scheduler", "aggregator", "postgres", "rabbitmq", *BENCH)
BACKEND_STATES = ("active", "lock_wait", "idle in transaction")


def python_reference_us(loops: int = 100) -> float:
    """CPU microseconds this machine's CPython takes for ``sum(range(10_000))``, best of 5.

    A yardstick for comparing CPU-per-task figures measured on different machines.
    """
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for _ in range(loops):
            sum(range(10_000))
        best = min(best, (time.process_time() - began) / loops)
    return round(best * 1e6, 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _latency(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": ms(percentile(values, 50)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values, default=None)),
    }


def _group_cpu(window: Sequence[Sample]) -> dict[str, float]:
    """% of one core per sampled group over the samples' span."""
    seconds = window[-1].at - window[0].at
    cpu: Counter[str] = Counter()
    for before, after in zip(window, window[1:], strict=False):
        for name, pids in after.groups.items():
            # A process started in between counts from its birth.
            cpu[name] += sum(max(0, after.ticks[p] - before.ticks.get(p, 0)) for p in pids)
    return {name: 100.0 * ticks / CLOCK_TICKS / seconds for name, ticks in cpu.items()}


def _by_component(groups: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(% per component, % of each role's busiest process) from % per group."""
    cpu = dict.fromkeys(COMPONENTS, 0.0)
    busiest: dict[str, float] = {}
    for name, value in groups.items():
        component = "postgres" if name == "postgres_shared" else role_of(name)
        cpu[component] = cpu.get(component, 0.0) + value
        if component not in ("postgres", "rabbitmq", *BENCH):
            busiest[name] = value
    return cpu, busiest


def _queue_stats(window: Sequence[Sample]) -> dict[str, dict[str, float]]:
    read = [s.queues for s in window if s.queues]
    names = sorted({name for queues in read for name in queues})
    stats = {}
    for name in names:
        values = [queues.get(name, 0) for queues in read]
        stats[name] = {
            "mean": round(statistics.fmean(values), 1),
            "max": max(values),
            "first": values[0],
            "last": values[-1],
        }
    return stats


def resources(samples: Sequence[Sample], start: float, end: float) -> dict[str, Any]:
    """CPU per component and machine-wide, queue depths and lock waits within a window."""
    window = [s for s in samples if start <= s.at <= end]
    if len(window) < 2:
        return {}
    groups = _group_cpu(window)
    cpu, busiest = _by_component(groups)
    busy = window[-1].machine_busy - window[0].machine_busy
    total = window[-1].machine_total - window[0].machine_total
    machine = 100.0 * (os.cpu_count() or 1) * busy / total if total else 0.0
    states = {key for s in window for key in s.backends} | set(BACKEND_STATES)
    return {
        "cpu": {name: round(value, 1) for name, value in cpu.items()},
        "cpu_groups": {name: round(value, 1) for name, value in groups.items()},
        "cpu_busiest_process": {name: round(value, 1) for name, value in busiest.items()},
        "machine_cpu": round(machine, 1),
        "other_cpu": round(max(0.0, machine - sum(cpu.values())), 1),
        "queues": _queue_stats(window),
        "db_backends_mean": {
            state: round(statistics.fmean(s.backends.get(state, 0) for s in window), 2)
            for state in sorted(states)
        },
    }


def _database(cluster: BenchCluster, window: Window) -> dict[str, Any]:
    """What the database recorded within the window."""
    bounds = {"a": window.start_wall, "b": window.end_wall}
    claims = cluster.sql(
        "SELECT project_id, count(*) FROM claims WHERE claimed_at >= :a AND claimed_at < :b "
        "GROUP BY 1",
        **bounds,
    )
    results = cluster.sql(
        "SELECT claim_id, status, reason, received_at FROM results "
        "WHERE received_at >= :a AND received_at < :b",
        **bounds,
    )
    rounds = cluster.sql(
        "SELECT count(*) FROM rounds WHERE closed_at >= :a AND closed_at < :b", **bounds
    )[0][0]
    return {
        "claims": {str(project): int(n) for project, n in claims},
        "results": results,
        "rounds_closed": int(rounds),
    }


def fairness(claims: dict[str, int], projects: Sequence[str]) -> dict[str, Any]:
    """Each project's share of the claims: min, max and Jain's index (1 = perfectly even)."""
    counts = [claims.get(project, 0) for project in projects]
    total = sum(counts)
    if not total:
        return {"share_min": None, "share_max": None, "jain": None, "claims": counts}
    squares = sum(n * n for n in counts)
    return {
        "share_min": round(min(counts) / total, 4),
        "share_max": round(max(counts) / total, 4),
        "jain": round(total * total / (len(counts) * squares), 4),
        "claims": counts,
    }


def _provider_time(window: Window) -> tuple[float, dict[str, float]]:
    """(busy share, share of provider time per state)."""
    available = window.providers * window.duration
    if not available:
        return 0.0, {}
    shares = {state: round(seconds / available, 4) for state, seconds in window.seconds.items()}
    return sum(window.seconds[s] for s in BUSY_STATES) / available, shares


def _generator(window: Window) -> dict[str, Any]:
    cpu = window.generator_cpu
    return {
        "cpu_percent": round(100 * cpu / window.duration, 1),
        "cpu_ms_per_task": round(1000 * cpu / window.published, 3) if window.published else None,
        "loop_lag_ms": _latency(window.loop_lag),
        "deliveries": window.deliveries,
    }


def _results(window: Window, recorder: Recorder, rows: Sequence[Any]) -> dict[str, Any]:
    accepted = sum(1 for row in rows if row[1] == "accepted")
    lags = [
        row[3].timestamp() - recorder.published_at[str(row[0])]
        for row in rows
        if str(row[0]) in recorder.published_at
    ]
    return {
        "results_accepted": accepted,
        "results_accepted_per_s": round(accepted / window.duration, 1),
        "results_not_accepted": dict(
            Counter(str(r[2] or r[1]) for r in rows if r[1] != "accepted")
        ),
        "result_lag_ms": {"p50": ms(percentile(lags, 50)), "p99": ms(percentile(lags, 99))},
    }


def _server_ms_per_task(cpu: dict[str, float], accepted: int, seconds: float) -> float | None:
    """Server CPU (all but the benchmark's own) per accepted task, in ms."""
    if not accepted or not cpu:
        return None
    server = sum(value for name, value in cpu.items() if name not in BENCH) / 100 * seconds
    return round(1000 * server / accepted, 2)


def summarize_step(
    cluster: BenchCluster,
    recorder: Recorder,
    window: Window,
    samples: Sequence[Sample],
    config: Config,
    projects: Sequence[str],
) -> dict[str, Any]:
    """Every figure of one step (one row of the table, one element of the JSON's steps)."""
    seconds = window.duration
    database = _database(cluster, window)
    used = resources(samples, window.start, window.end)
    busy, shares = _provider_time(window)
    row: dict[str, Any] = {
        "providers": window.providers,
        "seconds": round(seconds, 1),
        "offered_tasks_per_s": round(window.providers / config.mean_fit, 1),
        "busy_ceiling": round(barrier_ceiling(window.providers, config), 3),
        "claims": window.claims_ok,
        "claims_db": sum(database["claims"].values()),
        "claims_per_s": round(window.claims_ok / seconds, 1),
        "results_published": window.published,
        "results_published_per_s": round(window.published / seconds, 1),
        **_results(window, recorder, database["results"]),
        "rounds_closed": database["rounds_closed"],
        "claim_latency_ms": _latency(window.claim_latency) | {"count": len(window.claim_latency)},
        "refusals": dict(window.refusals),
        "errors": dict(window.errors),
        "publish_ms": _latency(window.publish_latency),
        "uploads": window.uploads,
        "providers_busy": round(busy, 4),
        "provider_time": shares,
        "generator": _generator(window),
        **used,
    }
    row["server_cpu_ms_per_task"] = _server_ms_per_task(
        used.get("cpu", {}), row["results_accepted"], seconds
    )
    if len(projects) > 1:
        row["projects"] = fairness(database["claims"], projects)
    return row
