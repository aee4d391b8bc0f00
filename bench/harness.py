"""Shared plumbing for benchmarks that run the real system: a fresh cluster, a digits project.

``BenchCluster`` starts the API, scheduler, aggregator and N providers as processes on a new
database, RabbitMQ vhost and blob directory, and removes them all afterwards. ``round_report``
turns the database's timestamps and the providers' reported timings into a per-round
breakdown of where the wall time went.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from daig.client import ClientError, DaigClient
from daig.hyperparams import Hyperparameters
from daig_cli.cluster import LocalCluster


@dataclass
class BenchCluster:
    processes: LocalCluster
    api_url: str
    database_url: str
    amqp_url: str
    work: Path

    def client(self, user: str) -> DaigClient:
        client = DaigClient(self.api_url)
        with contextlib.suppress(ClientError):  # already signed up
            client.signup(user, f"{user}-password")
        client.login(user, f"{user}-password")
        return client

    def add_providers(self, count: int, *extra: str) -> list[str]:
        names = []
        for index in range(count):
            name = f"provider{len(self.processes.processes) + index}"
            self.client(name).close()
            self.processes.start_provider(name, name, f"{name}-password", *extra)
            names.append(name)
        return names

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(query), params).all())
        finally:
            engine.dispose()


@contextmanager
def bench_cluster(**settings: str) -> Iterator[BenchCluster]:
    """API, scheduler and aggregator on a fresh database, vhost and blob directory.

    Replication is off unless asked (``replication="true"``): these benchmarks measure the
    pipeline; ``bench/cheating.py`` measures what verifying costs.
    """
    processes = LocalCluster.owned(
        prefix="daig_bench",
        secret="bench-secret-key-long-enough-for-hs256-signing",
        settings={
            "signups_per_ip": "100000",
            "replication": "false",
            "credit_signup_grant": "1000000",  # benchmarks train more than a new user would
        }
        | settings,
    )
    try:
        processes.start_servers()
        yield BenchCluster(
            processes,
            processes.api_url,
            processes.database_url,
            processes.amqp_url,
            processes.work,
        )
    finally:
        processes.close()


def _write_mlp_project(directory: str, rows: int, hidden: int, seed: int) -> None:
    from daig.examples import build_mlp

    rng = np.random.default_rng(seed)
    out = Path(directory)
    np.save(out / "x.npy", rng.random((rows, 64), dtype=np.float32), allow_pickle=False)
    np.save(out / "y.npy", rng.integers(0, 10, rows, dtype=np.int64), allow_pickle=False)
    build_mlp(hidden=hidden).save(out / "model.h5")


def write_mlp_project(
    directory: Path, rows: int, *, hidden: int = 64, seed: int = 0
) -> dict[str, Path]:
    """The digits MLP (.h5) with ``rows`` random rows and labels, written by a child process
    so that TensorFlow stays out of the benchmark's own process."""
    child = multiprocessing.get_context("spawn").Process(
        target=_write_mlp_project, args=(str(directory), rows, hidden, seed)
    )
    child.start()
    child.join(300)
    if child.exitcode != 0:
        raise RuntimeError(f"writing the model and data failed (exit {child.exitcode})")
    return {
        "model": directory / "model.h5",
        "data": directory / "x.npy",
        "labels": directory / "y.npy",
    }


def _seconds(delta: Any) -> float:
    return float(delta.total_seconds())


def run_project(
    cluster: BenchCluster,
    files: Any,
    params: Hyperparameters,
    name: str = "bench",
    timeout: float = 1800,
    poll_seconds: float = 1.0,
) -> tuple[str, float]:
    """Create, upload and start a digits project; wait for it; (project id, wall seconds).

    The wall time is the project's own, from the database (started to finished), so polling
    seldom costs no precision; frequent polling would take CPU from the providers (every
    poll is an API request and a database query).
    """
    client = cluster.client("requestor")
    project = client.create_project(name, params)
    for kind in ("model", "data", "labels"):
        client.upload_file(project.id, kind, getattr(files, kind))
    client.start(project.id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.project(project.id).state
        if state in ("done", "failed", "cancelled"):
            if state != "done":
                raise RuntimeError(f"project {state}")
            started, finished = cluster.sql(
                "SELECT started_at, finished_at FROM projects WHERE id = :p", p=project.id
            )[0]
            return str(project.id), _seconds(finished - started)
        time.sleep(poll_seconds)
    raise TimeoutError("project did not finish")


PHASES = ("dispatch", "download", "fit", "encode", "upload", "transit", "aggregation", "other")
# Parts of "other" a provider reports (provider_agent/trainer.py): waiting for its training
# process to start TensorFlow, loading a new model, tracing its training step.
CHILD_PHASES = ("wait_ready", "load", "trace")


def round_report(cluster: BenchCluster, project_id: str) -> list[dict[str, float]]:
    """Per round: wall time and where it went, along the round's critical path.

    The critical path is the chain of tasks the provider that closed the round worked through
    in that round (one task when there are at least K providers; several when fewer
    providers take turns). Along it: dispatch is the time from the previous close (or the
    provider's previous task of the round) to the claim; download/fit/encode/upload are the
    provider's own timings; other is the training child's overhead around ``fit`` (loading
    weights and rows, the pipe); transit is the last result's way to the aggregator
    (publish, broker, queueing); aggregation is from its arrival to the round's close.
    ``CHILD_PHASES`` are the child's own seconds within download and other (it loads and traces
    a new model while the agent downloads): waiting for TensorFlow to start, model load, trace.
    ``slowest_fit`` is the largest total ``fit`` of one provider in the round, and
    ``overhead`` the wall time minus it: what coordination costs.
    """
    rounds = cluster.sql(
        "SELECT index, opened_at, closed_at FROM rounds WHERE project_id = :p ORDER BY index",
        p=project_id,
    )
    started = cluster.sql("SELECT started_at FROM projects WHERE id = :p", p=project_id)[0][0]
    report = []
    previous_close = started
    for index, _opened, closed in rounds:
        results = cluster.sql(
            "SELECT r.received_at, r.fit_seconds, r.timings, c.claimed_at, c.agent_id "
            "FROM results r JOIN claims c ON c.id = r.claim_id WHERE r.project_id = :p "
            "AND r.round_index = :i AND r.status = 'accepted' ORDER BY c.claimed_at",
            p=project_id,
            i=index,
        )
        closer = max(results, key=lambda r: r[0])[4]
        chain = [r for r in results if r[4] == closer]
        phase = dict.fromkeys((*PHASES, *CHILD_PHASES), 0.0)
        free_at = previous_close  # when the provider could take its next task
        for received, fit, timings, claimed, _agent in chain:
            timings = timings or {}
            train = timings.get("train", fit)
            phase["dispatch"] += max(0.0, _seconds(claimed - free_at))
            phase["download"] += timings.get("download", 0.0)
            phase["fit"] += timings.get("fit", fit)
            phase["encode"] += timings.get("encode", 0.0)
            phase["upload"] += timings.get("upload", 0.0)
            phase["other"] += max(0.0, train - timings.get("fit", fit) - timings.get("encode", 0.0))
            for name in CHILD_PHASES:
                phase[name] += timings.get(name, 0.0)
            work = timings.get("download", 0.0) + train + timings.get("upload", 0.0)
            free_at = claimed + timedelta(seconds=work)
            last_received = received
        phase["transit"] = max(0.0, _seconds(last_received - free_at))
        phase["aggregation"] = _seconds(closed - last_received)
        fits: dict[str, float] = {}
        for _received, fit, _timings, _claimed, agent in results:
            fits[agent] = fits.get(agent, 0.0) + fit
        wall = _seconds(closed - previous_close)
        slowest_fit = max(fits.values())
        report.append(
            {
                "round": index,
                "wall": wall,
                **phase,
                "tasks_on_path": len(chain),
                "slowest_fit": slowest_fit,
                "overhead": wall - slowest_fit,
            }
        )
        previous_close = closed
    return report


def summarize(report: list[dict[str, float]], skip_first: bool = True) -> dict[str, float]:
    """Median of each column, leaving out round 0 (training processes warming up)."""
    rows = report[1:] if skip_first and len(report) > 1 else report
    return {
        key: statistics.median(r[key] for r in rows)
        for key in ("wall", *PHASES, "slowest_fit", "overhead")
    }
