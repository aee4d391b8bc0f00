"""The Flower ServerApp (Deployment Runtime): FedAvg over the benchmark's rounds.

Every round all K SuperNodes train (``fraction_train=1``, no federated evaluation); the
replies are averaged weighted by ``num-examples``. A server-side timestamp is taken before
round 1 and after each round's aggregation (``evaluate_fn`` is called at exactly those
points), and the clients' reported fit and setup times are kept per round. The timestamps,
those timings and the final global weights are written to the run config's ``out-dir``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from .task import Work, initial_weights, quiet

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    quiet()
    work = Work.from_config(context.run_config)
    out = Path(str(context.run_config["out-dir"]))
    stamps: list[float] = []
    clients: list[list[dict[str, float]]] = []

    def mark(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        stamps.append(time.time())
        return None

    def client_metrics(records: list[RecordDict], key: str) -> MetricRecord:
        clients.append(
            [{k: float(v) for k, v in r.metric_records["metrics"].items()} for r in records]  # type: ignore[arg-type]
        )
        return aggregate_metricrecords(records, key)

    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=work.clients,
        min_available_nodes=work.clients,
        train_metrics_aggr_fn=client_metrics,
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial_weights(work.model)),
        num_rounds=work.rounds,
        evaluate_fn=mark,
    )
    np.savez(out / "final.npz", *result.arrays.to_numpy_ndarrays())
    (out / "rounds.json").write_text(json.dumps({"stamps": stamps, "clients": clients}))
