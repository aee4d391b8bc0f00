"""How much the load generator costs on this machine, with no DAIG server in the way.

The same fleet of simulated providers as ``bench.dispatch_scale``, against stand-ins that
answer at once: a stub API process grants every claim (a real ``ClaimGrant`` for the digits
MLP's weight schema, inline delta), and a feeder process keeps task messages queued and drains
the results, on a throwaway RabbitMQ vhost. Per step it prints the tasks/s the generator got
through, its CPU (% of a core, ms per task) and event-loop lag. RabbitMQ, the stub and the
feeder share the machine with it, so their CPU is taken from the generator as a server's would.

    python -m bench.dispatch.calibrate [--steps 100 250 500 1000] [--step-seconds 40] [...]

It takes the options of ``bench.dispatch_scale`` (those about projects do not apply).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sys
import time
import uuid
from collections.abc import Sequence

import numpy as np
import pika

from bench.dispatch.config import parse_args
from bench.dispatch.fleet import ramp
from bench.dispatch.recorder import BUSY_STATES, Window
from bench.dispatch.setup import Account
from daig import topology
from daig.broker import properties
from daig.contract.http import ClaimGrant, ProviderConfig, RemoteArray
from daig.contract.messages import TrainTask
from daig.settings import Settings
from daig.weights.schema import WeightSchema
from daig_cli.local_infra import Vhost, unique_name
from daig_cli.processes import free_port

QUEUED = 3000  # task messages the feeder keeps ready


def _grant_json(task_id: str) -> bytes:
    """A grant as the API would give it for the digits MLP (64 hidden units)."""
    shapes = [((64, 64), "<f4"), ((64,), "<f4"), ((64, 10), "<f4"), ((10,), "<f4")]
    schema = WeightSchema.of([np.zeros(shape, dtype) for shape, dtype in shapes])
    rows = RemoteArray(
        url="http://127.0.0.1:9/x?signature=" + "0" * 200,
        byte_start=128,
        byte_end=640,
        dtype="<f4",
        row_shape=[64],
        rows=2,
    )
    return (
        ClaimGrant(
            claim_id=uuid.uuid4(),
            task_id=uuid.UUID(task_id),
            project_id=uuid.UUID(int=1),
            round=0,
            shard=0,
            lease_seconds=60.0,
            model_url=rows.url,
            model_sha256="0" * 64,
            weights_url=rows.url,
            weight_schema=schema.to_json(),
            schema_hash=schema.hash,
            data=rows,
            labels=rows,
            epochs=1,
            batch_size=32,
            validation_split=0.0,
            result_key="calibration",
            result_url=rows.url,
            result_max_bytes=10**6,
            result_routing_key="result.0",
            delta_codec="fp32",
            inline_max_bytes=256 * 1024,
        )
        .model_dump_json()
        .encode()
    )


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one keep-alive connection: every request is a claim, every claim granted."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line[15:])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            body = _grant_json(head.split(b" ")[1].split(b"/")[3].decode())
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _stub_api(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.start_server(_answer, "127.0.0.1", port, backlog=2048)
        await server.serve_forever()

    asyncio.run(serve())


def _feeder(amqp_url: str) -> None:
    """Keep ~``QUEUED`` task messages ready; take the results away (acked in batches)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    tasks, results = connection.channel(), connection.channel()
    results.basic_qos(prefetch_count=1000)
    for route in topology.ResultPartitions(topology.DEFAULT_RESULT_PARTITIONS).routes():
        results.basic_consume(
            route.queue,
            lambda ch, method, _props, _body: (
                ch.basic_ack(method.delivery_tag, multiple=True)
                if method.delivery_tag % 100 == 0
                else None
            ),
        )
    while True:
        ready = tasks.queue_declare(topology.TASKS.queue, passive=True).method.message_count
        for _ in range(max(0, QUEUED - ready)):
            task = TrainTask(
                project_id=uuid.UUID(int=1), round=0, task_id=uuid.uuid4(), shard=0, attempt=1
            )
            tasks.basic_publish(
                topology.TASKS.exchange,
                topology.TASKS.publish_key,
                task.model_dump_json(),
                properties(task),
            )
        connection.process_data_events(time_limit=0.5)


def _wait_for_port(port: int, timeout: float = 60) -> None:
    """Until the stub API accepts connections (its process imports for seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _print(window: Window) -> None:
    seconds = window.duration
    busy = sum(window.seconds[s] for s in BUSY_STATES) / (window.providers * seconds)
    lag = sorted(window.loop_lag)[int(0.99 * (len(window.loop_lag) - 1))] if window.loop_lag else 0
    per_task = 1000 * window.generator_cpu / window.published if window.published else float("nan")
    print(
        f"{window.providers:>5} providers: {window.published / seconds:6.1f} tasks/s, generator "
        f"{100 * window.generator_cpu / seconds:5.1f}% of a core, {per_task:.2f} ms/task, "
        f"loop lag p99 {1000 * lag:.0f} ms, busy {busy:.0%}, errors {dict(window.errors) or '-'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    vhost = Vhost.named(Settings().amqp_url, unique_name("daig_calibrate"))
    amqp_url = vhost.url
    vhost.create()
    context = multiprocessing.get_context("spawn")
    children = []
    try:
        user = pika.URLParameters(amqp_url).credentials.username
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        topology.declare(connection.channel())
        connection.close()
        port = free_port()
        children = [
            context.Process(target=_stub_api, args=(port,), daemon=True),
            context.Process(target=_feeder, args=(amqp_url,), daemon=True),
        ]
        for child in children:
            child.start()
        _wait_for_port(port)
        broker = ProviderConfig(
            amqp_url=amqp_url,
            broker_user=user,
            tasks_queue=topology.TASKS.queue,
            results_exchange=topology.RESULTS_EXCHANGE,
            results_routing_key=topology.ResultPartitions(topology.DEFAULT_RESULT_PARTITIONS)
            .route(0)
            .publish_key,
            lease_seconds=60.0,
            user_id=1,
        )
        accounts = [Account(f"calibrate{i}", "x" * 160, broker) for i in range(config.accounts)]
        recorder, _ = asyncio.run(ramp(f"http://127.0.0.1:{port}", accounts, config))
    finally:
        for child in children:
            child.terminate()
        vhost.drop()
    for window in recorder.windows:
        _print(window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
