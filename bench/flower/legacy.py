"""Flower's long-lived server and clients (``start_server``/``start_client``, gRPC).

Deprecated since Flower 1.13 in favour of the Deployment Runtime, but still shipped: each
client is one process for the whole run that keeps TensorFlow and the compiled model loaded
between rounds, like a DAIG provider's training child. So this is Flower without the
per-message process start-up of the Deployment Runtime.

    python -m bench.flower.legacy server --address 127.0.0.1:PORT --work work.json --out DIR
    python -m bench.flower.legacy client --address 127.0.0.1:PORT --work work.json --slot J

The server runs FedAvg (``fraction_fit=1``, no federated evaluation, weighted by the
clients' example counts) from the model file's weights; ``evaluate_fn``, which Flower calls
before round 1 and after each round's aggregation, timestamps the rounds and keeps the final
weights. Both are written to ``DIR`` (``rounds.json``, ``final.npz``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.flower.task import Work, initial_weights, process_seconds, quiet, trainer


def serve(address: str, work: Work, out: Path) -> None:
    from flwr.common import ndarrays_to_parameters
    from flwr.server import ServerConfig, start_server
    from flwr.server.strategy import FedAvg

    stamps: list[float] = []
    clients: list[list[dict[str, float]]] = []

    def mark(server_round: int, weights: list[np.ndarray], config: Any) -> None:
        stamps.append(time.time())
        if server_round == work.rounds:
            np.savez(out / "final.npz", *weights)

    def fit_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        clients.append([{"num-examples": n, **m} for n, m in results])
        return {}

    strategy = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=work.clients,
        min_available_clients=work.clients,
        evaluate_fn=mark,
        on_fit_config_fn=lambda server_round: {"server-round": server_round},
        initial_parameters=ndarrays_to_parameters(initial_weights(work.model)),
        fit_metrics_aggregation_fn=fit_metrics,
        accept_failures=False,
    )
    start_server(
        server_address=address,
        config=ServerConfig(num_rounds=work.rounds),
        strategy=strategy,
    )
    (out / "rounds.json").write_text(json.dumps({"stamps": stamps, "clients": clients}))


def connect(address: str, work: Work, slot: int) -> None:
    from flwr.client import NumPyClient, start_client

    shard_trainer = trainer(work)  # load once, before the first round, as a provider does

    class ShardClient(NumPyClient):
        def fit(
            self, parameters: list[np.ndarray], config: dict[str, Any]
        ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
            server_round = int(config["server-round"])
            weights, samples, fit_seconds = shard_trainer.train(server_round - 1, slot, parameters)
            return weights, samples, {"fit-seconds": fit_seconds}

    start_client(server_address=address, client=ShardClient().to_client(), insecure=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--work", type=Path, required=True, help="JSON of Work.as_config()")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--slot", type=int)
    args = parser.parse_args()
    quiet()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    work = Work.from_config(json.loads(args.work.read_text()))
    if args.role == "server":
        serve(args.address, work, args.out)
    else:
        connect(args.address, work, args.slot)
    print(f"{args.role} done after {process_seconds():.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
