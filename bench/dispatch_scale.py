"""Dispatch at scale: hundreds to thousands of simulated providers against one DAIG server.

A real cluster (``bench.harness.bench_cluster``: API, scheduler and aggregator processes on a
fresh database, vhost and blob directory) trains a tiny model (the digits MLP on random rows)
in one or several projects. The providers are simulated in this process, cheaply enough not
to be the limit: one asyncio event loop, pika's native asyncio adapter, a lean keep-alive
HTTP client (``bench/dispatch/``). Each does what ``provider_agent.agent`` does minus the
training: take a task message (prefetch 1, its account's own broker user), claim it over
HTTP, "fit" for a random time, send a delta of the model's exact schema, publish the result
with confirms, ack.

The providers are ramped (100, 250, 500, 1000 by default), each step's first seconds left out
as warm-up. Per step it prints claims/s, results accepted/s (database), claim latency, how
busy the providers were, refusals, result lag, CPU per component and of the generator, server
CPU per accepted task, and with several projects how evenly they were served; then the knee
and what limits it, and one JSON line with every figure. bench/README.md explains each one.

    python -m bench.dispatch_scale [--steps 100 250 500 1000] [--step-seconds 40]
        [--warmup 10] [--projects 1] [--accounts 25] [--providers-per-connection 20]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.dispatch.config import Config, parse_args
from bench.dispatch.figures import python_reference_us, summarize_step
from bench.dispatch.fleet import ramp
from bench.dispatch.recorder import Recorder
from bench.dispatch.report import knee, print_details, print_json, print_table, print_verdict
from bench.dispatch.sampler import Sampler, Watch
from bench.dispatch.setup import make_accounts, start_projects, wait_for_round_zero, write_files
from bench.harness import BenchCluster, bench_cluster


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="daig-dispatch-") as work:  # removed afterwards
        files = write_files(Path(work), config)
        report = run_benchmark(config, files)
    print()
    print_table(report["steps"], config.projects)
    print()
    print_details(report["steps"], report["run_totals"])
    print()
    print_verdict(report["verdict"])
    print_json(report)
    return 0


def _describe(config: Config, accounts: int, projects: list[str], round_zero: str) -> None:
    print(
        f"cluster up: {accounts} accounts, {len(projects)} project(s); per project "
        f"{config.per_project(config.total_tasks)} shards, K={config.per_project(config.task_size)}"
        f", max_contributors={config.per_project(config.max_contributors)}; {round_zero}",
        flush=True,
    )


def run_benchmark(config: Config, files: dict[str, Path]) -> dict[str, Any]:
    """Start the cluster and the projects, ramp the providers; every figure, as a dict."""
    began = datetime.now(UTC)
    load, speed = os.getloadavg(), python_reference_us()
    with bench_cluster() as cluster:
        accounts = make_accounts(cluster, config.accounts)
        projects = start_projects(cluster, files, config)
        _describe(config, len(accounts), projects, wait_for_round_zero(cluster, config))
        sampler = Sampler(_watch(cluster))
        sampler.start()
        try:
            recorder, fleet = asyncio.run(ramp(cluster.api_url, accounts, config))
        finally:
            samples = sampler.stop()
        time.sleep(2.0)  # let the aggregator record what was published last
        rows = [
            summarize_step(cluster, recorder, window, samples, config, projects)
            for window in recorder.windows
        ]
        totals = _run_totals(cluster, recorder) | {"claims_unanswered": fleet.claims_unanswered}
    return {
        "date": began.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load,
            "loadavg_after": os.getloadavg(),
            "python_reference_us": speed,
        },
        "config": asdict(config),
        "steps": rows,
        "verdict": knee(rows),
        "run_totals": totals,
        "fleet": asdict(fleet),
        "project_ids": projects,
    }


def _run_totals(cluster: BenchCluster, recorder: Recorder) -> dict[str, Any]:
    """Whole-run counts from both sides: they differ only by what was cut off at the end."""
    results = cluster.sql(
        "SELECT status, coalesce(reason, ''), count(*) FROM results GROUP BY 1, 2"
    )
    return {
        "claims_generator": recorder.total("claims_ok"),
        "claims_db": cluster.sql("SELECT count(*) FROM claims")[0][0],
        "results_published": recorder.total("published"),
        "results_db": {f"{s}:{r}" if r else s: n for s, r, n in results},
    }


def _watch(cluster: BenchCluster) -> Watch:
    return Watch(
        processes={name: p.pid for name, p in cluster.processes.processes.items()},
        generator=os.getpid(),
        database_url=cluster.database_url,
        amqp_url=cluster.amqp_url,
    )


if __name__ == "__main__":
    sys.exit(main())
