"""Chaos run: train a project while killing DAIG's processes at random, then prove the result.

Starts API, scheduler, aggregator and providers as processes on a fresh database, vhost and
blob directory; trains digits for many short rounds; every few seconds SIGKILLs a random
service or provider (and, with --infra, restarts RabbitMQ or Postgres) and brings it back.
At the end it prints what it injected and what it checked: every round closed by exactly K
accepted results, every round's weights recomputed from its accepted deltas, every result a
provider published recorded exactly once -- i.e. 0 lost and 0 double-counted updates -- and
held-out accuracy against the fault-free reference.

    .venv/bin/python -m bench.chaos --kills 12            # processes only
    .venv/bin/python -m bench.chaos --kills 12 --infra    # also restart RabbitMQ and Postgres
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import create_engine, text

from daig.blobstore import open_blob_store
from daig.broker import queue_depths
from daig.client import DaigClient
from daig.contract.http import ProjectOut
from daig.db.session import make_sessionmaker
from daig.examples import held_out_accuracy, write_digits
from daig.hyperparams import Hyperparameters
from daig.logs import quiet_tensorflow
from daig.reference import reference_accuracy
from daig.settings import Settings
from daig_aggregator.audit import audit_project
from daig_cli.cluster import LocalCluster
from daig_cli.local_infra import pg_ctlcluster
from daig_cli.rabbitmqctl import rabbitmqctl

PARAMS = Hyperparameters(epochs=3, batch_size=32, total_tasks=12, task_size=3, passes=5)
SENT = re.compile(r"result ([0-9a-f-]{36}) sent")
SERVICES = ("api", "scheduler", "aggregator")


@dataclass
class Chaos:
    cluster: LocalCluster
    providers: list[str]
    infra: bool
    rng: random.Random
    injected: list[dict[str, object]] = field(default_factory=list)

    def victims(self) -> list[str]:
        return [*SERVICES, *self.providers, *(["rabbitmq", "postgres"] if self.infra else [])]

    def strike(self, round_index: int) -> None:
        victim = self.rng.choice(self.victims())
        began = time.monotonic()
        if victim == "rabbitmq":
            rabbitmqctl("stop_app", timeout=180)
            time.sleep(self.rng.uniform(1, 4))
            rabbitmqctl("start_app", timeout=180)
        elif victim == "postgres":
            pg_ctlcluster("stop")
            time.sleep(self.rng.uniform(1, 4))
            pg_ctlcluster("start")
        else:
            self.cluster.kill(victim)
            time.sleep(self.rng.uniform(0.5, 3))
            self.cluster.restart(victim)
        self.injected.append(
            {
                "victim": victim,
                "round": round_index,
                "down_seconds": round(time.monotonic() - began, 1),
            }
        )
        print(f"  kill #{len(self.injected):>2}: {victim:<11} at round {round_index}", flush=True)


def _retry(call, seconds: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=12, help="faults to inject (at least)")
    parser.add_argument("--providers", type=int, default=3)
    parser.add_argument("--infra", action="store_true", help="also restart RabbitMQ and Postgres")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--interval", type=float, default=3.0, help="mean seconds between kills")
    args = parser.parse_args()
    quiet_tensorflow()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    cluster = LocalCluster.owned(
        prefix="daig_chaos",
        secret="chaos-secret-key-long-enough-for-hs256-signing",
        settings={
            "lease_seconds": "6",
            "straggler_floor_seconds": "4",
            "scheduler_tick_seconds": "0.5",
        },
    )
    providers = [f"provider{i + 1}" for i in range(args.providers)]
    chaos = Chaos(cluster, providers, args.infra, rng)
    print(
        f"chaos run: seed {seed}, {args.kills}+ kills, {args.providers} providers, "
        f"infra {'on' if args.infra else 'off'}, logs in {cluster.log_dir}"
    )
    try:
        files = write_digits(cluster.work / "data")
        cluster.start_servers()
        client = DaigClient(cluster.api_url)
        for name in [*providers, "requestor"]:
            client.signup(name, f"{name}-password")
        for name in providers:
            cluster.start_provider(name, name, f"{name}-password")
        client.login("requestor", "requestor-password")
        project = client.create_project("chaos", PARAMS)
        for kind in ("model", "data", "labels"):
            client.upload_file(project.id, kind, getattr(files, kind))
        client.start(project.id)
        state = _inject(chaos, client, str(project.id), args)
        report = _verify(chaos, client, str(project.id), state, files, seed)
    finally:
        cluster.close()
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


def _inject(
    chaos: Chaos, client: DaigClient, project_id: str, args: argparse.Namespace
) -> ProjectOut:
    while True:
        project = _retry(lambda: client.project(project_id))
        if project.state in ("done", "failed", "cancelled"):
            return project
        if len(chaos.injected) >= args.kills and project.round >= 1:
            # enough faults: let it finish undisturbed
            time.sleep(1.0)
            continue
        time.sleep(chaos.rng.expovariate(1 / args.interval))
        chaos.strike(int(project.round))


def _verify(
    chaos: Chaos,
    client: DaigClient,
    project_id: str,
    final: ProjectOut,
    files,
    seed: int,
) -> dict:  # type: ignore[no-untyped-def]
    env, database, work = chaos.cluster.env, chaos.cluster.database_url, chaos.cluster.work
    deadline = time.monotonic() + 120
    while queue_depths(env["DAIG_AMQP_URL"])["daig.results"] and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2.0)
    settings = Settings(
        database_url=database, blob_url=env["DAIG_BLOB_URL"], secret_key=env["DAIG_SECRET_KEY"]
    )
    engine = create_engine(database)
    with make_sessionmaker(engine)() as session:
        audit = audit_project(
            session=session, blobs=open_blob_store(settings), project_id=uuid.UUID(project_id)
        )
        recorded = {
            str(m) for m in session.execute(text("SELECT message_id FROM results")).scalars()
        }
    engine.dispose()
    sent: set[str] = set()
    for log in chaos.cluster.log_dir.glob("provider*.log"):
        sent |= set(SENT.findall(log.read_text(errors="replace")))
    unrecorded = sorted(sent - recorded)
    model = work / "final.h5"
    client.download_model(project_id, model)
    accuracy = held_out_accuracy(model, files.test_data, files.test_labels)
    arrays = [np.load(p) for p in (files.data, files.labels, files.test_data, files.test_labels)]
    reference = reference_accuracy(files.model, *arrays, PARAMS)
    kills: dict[str, int] = {}
    for fault in chaos.injected:
        kills[str(fault["victim"])] = kills.get(str(fault["victim"]), 0) + 1
    expected_rounds = final.total_rounds or 0
    checks = {
        "project_done": final.state == "done",
        "rounds_closed": audit.rounds_closed == expected_rounds,
        "rounds_verified_by_recomputation": audit.rounds_verified == expected_rounds,
        "accepted_equals_rounds_times_k": audit.accepted == expected_rounds * PARAMS.task_size,
        "lost_updates_zero": audit.lost == 0 and not unrecorded,
        "double_counted_zero": audit.double_counted == 0,
        "accuracy_within_3_points_of_reference": accuracy >= reference - 0.03,
    }
    print("\ninjected faults:", ", ".join(f"{v} x{n}" for v, n in sorted(kills.items())))
    print(
        f"rounds {audit.rounds_closed}/{expected_rounds} closed, "
        f"{audit.rounds_verified} verified by recomputing the weights"
    )
    print(
        f"accepted updates {audit.accepted} (= {expected_rounds} x K={PARAMS.task_size}); "
        f"results published by providers {len(sent)}, recorded {len(sent) - len(unrecorded)}"
    )
    print(
        f"lost updates: {audit.lost + len(unrecorded)}   double-counted updates: "
        f"{audit.double_counted}"
    )
    print(
        "rejected (recorded, not counted):",
        ", ".join(f"{k} {v}" for k, v in sorted(audit.rejected.items())) or "none",
    )
    print(f"held-out accuracy {accuracy:.4f} (fault-free reference {reference:.4f})")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return {
        "seed": seed,
        "kills": len(chaos.injected),
        "kills_by_victim": kills,
        "rounds": expected_rounds,
        "rounds_closed": audit.rounds_closed,
        "rounds_verified": audit.rounds_verified,
        "accepted": audit.accepted,
        "published_results": len(sent),
        "unrecorded_results": len(unrecorded),
        "lost": audit.lost + len(unrecorded),
        "double_counted": audit.double_counted,
        "rejected": dict(audit.rejected),
        "problems": audit.problems,
        "held_out_accuracy": round(accuracy, 4),
        "reference_accuracy": round(reference, 4),
        "checks": checks,
        "passed": all(checks.values()),
    }


if __name__ == "__main__":
    sys.exit(main())
