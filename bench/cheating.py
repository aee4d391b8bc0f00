"""Cheating volunteers against replication: is each cheat caught, and what does checking cost?

Real processes on a fresh cluster with replication on: the API, scheduler, aggregator and six
providers, honest ones alternating 1 and 2 training threads. Parts:

1. **Cheats.** For each cheat of ``bench/cheater.py`` (zero, scaled x0.1, noise with an honest
   norm, replay, 1 epoch instead of 5), one cheater among six providers trains the digits
   project (12 shards, K=4, 3 passes, 5 epochs). Printed: the cheater's tasks before its
   quarantine, the credits it kept, honest providers wrongly quarantined, the extra compute
   spent on replicas, and held-out accuracy against the clean run (six honest providers).
2. **Trusted.** After a warm-up project that makes every provider trusted (10 verified
   results each), the same project again: the extra compute replication costs at the
   default ``verify_fraction`` of 0.1 (a new account's tasks are all replicated).
3. **Honest pairs.** Six honest providers (1 and 2 threads) on 200 small shards with
   ``verify_fraction`` 1.0 until at least ``--pairs`` replicated pairs were compared: how
   many honest providers were quarantined (the target is none).

    .venv/bin/python -m bench.cheating [--pairs 1000] [--only cheats|trusted|pairs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BenchCluster, bench_cluster, run_project
from daig.examples import DigitsFiles, held_out_accuracy, write_digits
from daig.hyperparams import Hyperparameters
from daig.logs import quiet_tensorflow

PROVIDERS = 6
CHEATS = ("zero", "scaled", "noise", "replay", "epochs")
PARAMS = Hyperparameters(epochs=5, batch_size=32, total_tasks=12, task_size=4, passes=3)
SETTINGS = {"replication": "true", "replica_wait_seconds": "600"}


@dataclass
class Run:
    label: str
    accuracy: float
    wall: float
    trained: int  # results that trained (every status but failed)
    counted: int  # results counted in rounds
    cheater_tasks_before: int | None = None
    cheater_kept: int | None = None
    cheater_quarantined: bool | None = None
    honest_quarantined: int = 0
    agreed_pairs: int = 0

    @property
    def extra_compute(self) -> float:
        return (self.trained - self.counted) / self.counted if self.counted else 0.0


def start_providers(cluster: BenchCluster, honest: int, cheat: str | None) -> list[str]:
    """Honest providers alternate 1 and 2 threads; the cheater (if any) is the last."""
    names = []
    for index in range(honest):
        names += cluster.add_providers(1, "--threads", str(1 + index % 2))
    if cheat is not None:
        name = "cheater"
        password = cluster.work / "cheater-password"
        password.write_text(f"{name}-password")
        cluster.client(name).close()
        cluster.processes.start_argv(
            name,
            [
                sys.executable,
                "-m",
                "bench.cheater",
                "--server",
                cluster.api_url,
                "--user",
                name,
                "--password-file",
                str(password),
                "--cheat",
                cheat,
                "--threads",
                "1",
            ],
        )
        names.append(name)
    return names


def user_id(cluster: BenchCluster, name: str) -> int:
    return int(cluster.sql("SELECT id FROM users WHERE username = :n", n=name)[0][0])


def measure(
    cluster: BenchCluster, files: DigitsFiles, label: str, params: Hyperparameters, cheater: bool
) -> Run:
    project_id, wall = run_project(cluster, files, params, name=label)
    model = cluster.work / f"{label}.h5"
    cluster.client("requestor").download_model(uuid.UUID(project_id), model)
    accuracy = held_out_accuracy(model, files.test_data, files.test_labels)
    [(trained, counted, agreed)] = cluster.sql(
        "SELECT count(*) FILTER (WHERE status <> 'failed' AND reason IS DISTINCT FROM"
        " 'claim_released'), count(*) FILTER (WHERE status = 'accepted'),"
        " count(*) FILTER (WHERE status = 'agreed') FROM results WHERE project_id = :p",
        p=project_id,
    )
    honest_quarantined = cluster.sql(
        "SELECT count(*) FROM provider_trust t JOIN users u ON u.id = t.provider_id"
        " WHERE t.quarantined_at IS NOT NULL AND u.username <> 'cheater'"
    )[0][0]
    run = Run(
        label,
        accuracy,
        wall,
        int(trained),
        int(counted),
        honest_quarantined=int(honest_quarantined),
        agreed_pairs=int(agreed),
    )
    if cheater:
        cid = user_id(cluster, "cheater")
        [(quarantined_at,)] = cluster.sql(
            "SELECT max(quarantined_at) FROM provider_trust WHERE provider_id = :c", c=cid
        )
        run.cheater_quarantined = quarantined_at is not None
        run.cheater_tasks_before = int(
            cluster.sql(
                "SELECT count(*) FROM results WHERE provider_id = :c AND status <> 'failed'"
                " AND (CAST(:q AS timestamptz) IS NULL OR received_at <= :q)",
                c=cid,
                q=quarantined_at,
            )[0][0]
        )
        run.cheater_kept = int(
            cluster.sql(
                "SELECT coalesce(sum(amount), 0) FROM credit_entries e"
                " JOIN credit_transfers t ON t.id = e.transfer_id"
                " WHERE e.user_id = :c AND t.kind IN ('work', 'reversal')",
                c=cid,
            )[0][0]
        )
    return run


def cheats(files: DigitsFiles, only: list[str]) -> list[Run]:
    runs = []
    for cheat in [None, *only]:
        label = "clean" if cheat is None else cheat
        with bench_cluster(**SETTINGS) as cluster:
            start_providers(cluster, PROVIDERS - (cheat is not None), cheat)
            runs.append(measure(cluster, files, label, PARAMS, cheater=cheat is not None))
        print_run(runs[-1], runs[0])
    return runs


def trusted(files: DigitsFiles) -> list[Run]:
    runs = []
    with bench_cluster(**SETTINGS) as cluster:
        start_providers(cluster, PROVIDERS, None)
        runs.append(measure(cluster, files, "new accounts", PARAMS, cheater=False))
        print_run(runs[-1], None)
        for attempt in range(5):  # until every provider has 10 verified results
            untrusted = cluster.sql(
                "SELECT count(*) FROM users u LEFT JOIN provider_trust t ON t.provider_id = u.id"
                " WHERE u.username LIKE 'provider%' AND coalesce(t.verified_valid, 0) < 10"
            )[0][0]
            if untrusted == 0:
                break
            measure(cluster, files, f"warm-up {attempt + 1}", PARAMS, cheater=False)
        runs.append(measure(cluster, files, "trusted accounts", PARAMS, cheater=False))
        print_run(runs[-1], None)
    return runs


def pairs(files: DigitsFiles, wanted: int) -> Run:
    params = Hyperparameters(
        epochs=2, batch_size=16, total_tasks=200, task_size=10, passes=5, verify_fraction=1.0
    )
    with bench_cluster(**SETTINGS) as cluster:
        start_providers(cluster, PROVIDERS, None)
        total = Run("honest pairs", 0.0, 0.0, 0, 0)
        index = 0
        while total.agreed_pairs < wanted:
            index += 1
            run = measure(cluster, files, f"pairs {index}", params, cheater=False)
            total.agreed_pairs += run.agreed_pairs
            total.trained += run.trained
            total.counted += run.counted
            total.wall += run.wall
            total.accuracy = run.accuracy
            total.honest_quarantined = run.honest_quarantined  # cumulative in the database
            print(
                f"  pairs so far {total.agreed_pairs}, honest quarantined "
                f"{total.honest_quarantined}",
                flush=True,
            )
    return total


def print_run(run: Run, clean: Run | None) -> None:
    line = (
        f"  {run.label:16s} accuracy {run.accuracy:.4f}"
        + (f" ({(run.accuracy - clean.accuracy) * 100:+.1f} pt vs clean)" if clean else "")
        + f"  wall {run.wall:6.1f} s  extra compute {run.extra_compute:6.1%}"
        f"  ({run.trained} trained / {run.counted} counted)"
        f"  honest quarantined {run.honest_quarantined}"
    )
    if run.cheater_quarantined is not None:
        line += (
            f"  cheater: {'quarantined' if run.cheater_quarantined else 'NOT CAUGHT'} after "
            f"{run.cheater_tasks_before} task(s), kept {run.cheater_kept:,} credits"
        )
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1000, help="honest replicated pairs")
    parser.add_argument("--only", choices=("cheats", "trusted", "pairs"), default=None)
    parser.add_argument("--cheats", nargs="+", choices=CHEATS, default=list(CHEATS))
    args = parser.parse_args()
    quiet_tensorflow()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="daig-cheating-") as tmp:
        files = write_digits(Path(tmp) / "digits")
        if args.only in (None, "cheats"):
            print(f"1. cheats: 1 cheater among {PROVIDERS} providers, digits, {PARAMS}")
            cheats(files, args.cheats)
        if args.only in (None, "trusted"):
            print("2. extra compute of replication, new then trusted accounts")
            trusted(files)
        if args.only in (None, "pairs"):
            print(f"3. honest replicated pairs (1 and 2 threads), at least {args.pairs}")
            total = pairs(files, args.pairs)
            print(
                f"  {total.agreed_pairs} honest pairs compared, honest providers quarantined: "
                f"{total.honest_quarantined}"
            )
    print(f"bench took {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
