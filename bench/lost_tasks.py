"""Lost task messages: what a volunteer who purges the tasks queue, or swallows its messages,
costs a project.

Any provider's broker user may read the shared ``daig.tasks`` queue, and RabbitMQ ties purging
a queue to that same permission, so an ordinary volunteer can purge it, or consume and ack
task messages without claiming them. DAIG publishes again every task nobody claimed within
``DAIG_REPUBLISH_SECONDS`` (default 10 s). This runs a real cluster (API, scheduler,
aggregator) with simulated honest providers (claim over HTTP, "fit" for a moment, publish a
synthetic delta, ack -- what ``provider_agent`` does, minus TensorFlow) and an attacker using
an ordinary volunteer account's broker user, in three scenarios:

- ``baseline``: no attacker;
- ``purge``: the attacker purges ``daig.tasks`` every ``--purge-every`` seconds;
- ``black-hole``: the attacker consumes ``daig.tasks`` with a prefetch of 1,000 and acks every
  message at once, claiming nothing, until the scheduler's black-hole watch quarantines its
  account and deletes its broker user (``daig_scheduler.blackholes``), which closes its
  connection.

For each it prints how long the project took, the worst delay of a task (from its round's
opening to the claim that got it done) and, for the black hole, how long after it started the
broker cut it off.

    .venv/bin/python -m bench.lost_tasks [--providers 4] [--rounds 5] [--task-size 8]
        [--purge-every 0.1]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pika.exceptions import AMQPError

from bench.harness import BenchCluster, bench_cluster, write_mlp_project
from daig.broker import connect, publish_on
from daig.client import ClientError
from daig.contract.http import ClaimGrant
from daig.contract.messages import TrainingStatus, TrainResult, TrainTask
from daig.hyperparams import Hyperparameters
from daig.topology import TASKS, result_route
from daig.weights.schema import WeightSchema
from daig.weights.stream import encode_weights

FIT_SECONDS = 0.3


@dataclass(frozen=True)
class Options:
    providers: int
    rounds: int
    task_size: int
    purge_every: float


class HonestProvider(threading.Thread):
    """Takes a task message, claims it, 'fits', publishes a synthetic delta, acks."""

    def __init__(self, cluster: BenchCluster, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.client = cluster.client(name)
        self.stop = stop
        self.config = self.client.provider_config()

    def run(self) -> None:
        connection = connect(self.config.amqp_url)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        publisher = connection.channel()
        publisher.confirm_delivery()
        for method, _props, body in channel.consume(TASKS.queue, inactivity_timeout=0.2):
            if self.stop.is_set():
                break
            if method is None:
                continue
            task = TrainTask.model_validate_json(body)
            try:
                grant = self.client.claim(task.task_id, self.name)
            except ClientError:
                channel.basic_ack(method.delivery_tag)
                continue
            connection.sleep(FIT_SECONDS)
            result = _result(grant, self.config.user_id)
            route = result_route(grant.result_routing_key)
            publish_on(publisher, route, result, user_id=self.config.broker_user)
            channel.basic_ack(method.delivery_tag)
        connection.close()


def _result(grant: ClaimGrant, provider_id: int) -> TrainResult:
    schema = WeightSchema.from_json(grant.weight_schema)
    delta = [np.full(t.shape, 1e-4, dtype=t.dtype) for t in schema.tensors]
    data = encode_weights(delta)
    return TrainResult(
        project_id=grant.project_id,
        round=grant.round,
        task_id=grant.task_id,
        claim_id=grant.claim_id,
        provider_id=provider_id,
        status=TrainingStatus.TRAINED,
        blob_key=grant.result_key,
        sha256=hashlib.sha256(data).hexdigest(),
        schema_hash=grant.schema_hash,
        inline_delta=base64.b64encode(data).decode(),
        samples=grant.data.rows,
        fit_seconds=FIT_SECONDS,
    )


def purger(cluster: BenchCluster, every: float) -> Callable[[threading.Event], None]:
    config = cluster.client("mallory").provider_config()

    def attack(stop: threading.Event) -> None:
        connection = connect(config.amqp_url, heartbeat=0)
        while not stop.wait(every):
            connection.channel().queue_purge(TASKS.queue)
        connection.close()

    return attack


def black_hole(cluster: BenchCluster, revoked: list[float]) -> Callable[[threading.Event], None]:
    """The attack; appends the seconds from its start until the broker cut it off (if it
    did: DAIG's scheduler quarantines such an account and deletes its broker user)."""
    config = cluster.client("mallory").provider_config()

    def attack(stop: threading.Event) -> None:
        began = time.monotonic()
        connection = connect(config.amqp_url)
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1000)
            for method, _props, _body in channel.consume(TASKS.queue, inactivity_timeout=0.1):
                if stop.is_set():
                    break
                if method is not None:
                    channel.basic_ack(method.delivery_tag)
        except AMQPError:
            revoked.append(time.monotonic() - began)
            return
        connection.close()

    return attack


def scenario(
    name: str, options: Options, files: dict[str, Path], attack: str | None
) -> dict[str, Any]:
    with bench_cluster() as cluster:
        stop = threading.Event()
        honest = [HonestProvider(cluster, f"honest{n}", stop) for n in range(options.providers)]
        for provider in honest:
            provider.start()
        attacker = None
        revoked: list[float] = []
        if attack is not None:
            run = (
                purger(cluster, options.purge_every)
                if attack == "purge"
                else black_hole(cluster, revoked)
            )
            attacker = threading.Thread(target=run, args=(stop,), daemon=True)
            attacker.start()
        try:
            wall, delays = _run_project(cluster, files, options)
        finally:
            stop.set()
            for thread in [*honest, *([attacker] if attacker else [])]:
                thread.join(15)
    return {
        "scenario": name,
        "wall_s": round(wall, 2),
        "worst_task_delay_s": round(max(delays), 2),
        "median_task_delay_s": round(float(np.median(delays)), 2),
        "attacker_revoked_after_s": round(revoked[0], 1) if revoked else None,
    }


def _run_project(
    cluster: BenchCluster, files: dict[str, Path], options: Options
) -> tuple[float, list[float]]:
    params = Hyperparameters(
        epochs=1,
        batch_size=32,
        total_tasks=options.task_size,
        task_size=options.task_size,
        passes=options.rounds,
    )
    client = cluster.client("requestor")
    project = client.create_project("lost-tasks", params)
    for kind, path in files.items():
        client.upload_file(project.id, kind, path)
    client.start(project.id)
    deadline = time.monotonic() + 600
    while client.project(project.id).state != "done":
        if time.monotonic() > deadline:
            raise TimeoutError("the project did not finish in 10 minutes")
        time.sleep(0.5)
    rows = cluster.sql(
        "SELECT r.opened_at, c.claimed_at, p.started_at, p.finished_at FROM claims c"
        " JOIN tasks t ON t.id = c.task_id JOIN rounds r ON r.project_id = t.project_id"
        " AND r.index = t.round_index JOIN projects p ON p.id = t.project_id"
        " WHERE c.project_id = :p AND c.state = 'finished'",
        p=project.id,
    )
    delays = [_seconds(claimed - opened) for opened, claimed, _, _ in rows]
    started, finished = rows[0][2], rows[0][3]
    return _seconds(finished - started), delays


def _seconds(delta: timedelta) -> float:
    return float(delta.total_seconds())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--task-size", type=int, default=8)
    parser.add_argument("--purge-every", type=float, default=0.1)
    args = parser.parse_args()
    options = Options(args.providers, args.rounds, args.task_size, args.purge_every)
    with tempfile.TemporaryDirectory(prefix="daig-lost-") as directory:
        files = write_mlp_project(Path(directory), rows=options.task_size * 20)
        rows = [
            scenario(name, options, files, attack)
            for name, attack in (("baseline", None), ("purge", "purge"), ("black-hole", "black"))
        ]
    print(
        f"{'scenario':<12} {'wall s':>8} {'worst task delay s':>19} {'median delay s':>15} "
        f"{'attacker revoked after s':>25}"
    )
    for row in rows:
        revoked = row["attacker_revoked_after_s"]
        print(
            f"{row['scenario']:<12} {row['wall_s']:>8} {row['worst_task_delay_s']:>19} "
            f"{row['median_task_delay_s']:>15} {'-' if revoked is None else revoked:>25}"
        )
    print(json.dumps({"lost_tasks": rows, "options": vars(args)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
