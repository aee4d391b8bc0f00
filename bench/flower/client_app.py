"""The Flower ClientApp (Deployment Runtime): one FedAvg training task per message.

A SuperNode runs it in a ``flwr-clientapp`` process that it starts for each message, so a
fresh process imports TensorFlow and loads the model every round. ``setup-seconds`` (loading
and compiling the model), ``fit-seconds`` and ``process-seconds`` (the process's age when it
replies: start-up, imports, message transfer, setup, fit) go back with the reply so the
benchmark can show where Flower's round time goes.
"""

from __future__ import annotations

import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from .task import Work, process_seconds, quiet, trainer

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    quiet()
    work = Work.from_config(context.run_config)
    slot = int(context.node_config["partition-id"])
    server_round = int(str(msg.content.config_records["config"]["server-round"]))
    weights = msg.content.array_records["arrays"].to_numpy_ndarrays()
    began = time.perf_counter()
    shard_trainer = trainer(work)
    setup_seconds = time.perf_counter() - began
    new_weights, samples, fit_seconds = shard_trainer.train(server_round - 1, slot, weights)
    content = RecordDict(
        {
            "arrays": ArrayRecord(new_weights),
            "metrics": MetricRecord(
                {
                    "num-examples": samples,
                    "fit-seconds": fit_seconds,
                    "setup-seconds": setup_seconds,
                    "process-seconds": process_seconds(),
                }
            ),
        }
    )
    return Message(content=content, reply_to=msg)
