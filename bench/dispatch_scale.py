"""Dispatch at scale: hundreds of simulated providers against one API, scheduler and aggregator.

A real cluster (``bench.harness.bench_cluster``: API, scheduler and aggregator processes on a
fresh database, vhost and blob directory) trains a tiny model (the digits MLP on random rows)
with many tasks per round. The providers are simulated in this process: asyncio tasks that
do what ``provider_agent.agent`` does, minus the training -- take a task message, claim it
over HTTP, wait a random "fit" time, send a synthetic delta of the model's exact schema
(inline in the message when the grant allows, else PUT to the presigned ``result_url``),
publish the ``TrainResult`` with confirms, then ack the task message. They are spread over a
few DAIG accounts; each account has its own broker user (from ``/v1/provider/config``) and
one real broker connection, run by a thread that bridges pika to asyncio.

The number of virtual providers is ramped (50, 100, 250, 500, 750 by default) for a fixed
time each. Per step it reports claims/s (client and database), results accepted/s (from the
``results`` rows' timestamps), p50/p99 claim latency, refusals, the lag from a result's
publish to its record by the aggregator, how busy the providers were kept, the CPU of every
server process (``/proc/<pid>/stat``), Postgres and RabbitMQ, and the queue depths; then
where it saturates and which component is the bottleneck.

    .venv/bin/python -m bench.dispatch_scale [--steps 50 100 250 500 750] [--step-seconds 40]
        [--accounts 25] [--task-size 1000] [--total-tasks 2000] [--projects 1]

Everything runs on this machine: the load generator shares the CPU with the servers, so its
own CPU and event-loop lag are reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bench.harness import BenchCluster, bench_cluster
from daig.broker import connect, publish_on
from daig.hyperparams import Hyperparameters
from daig.messages import ResultStatus, TrainResult, TrainTask, decode
from daig.topology import EVENTS, RESULTS, TASKS
from daig.weights.codec import encode_weights
from daig.weights.schema import WeightSchema

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COMPONENTS = ("api", "scheduler", "aggregator", "postgres", "rabbitmq", "generator")
QUEUES = (TASKS.queue, RESULTS.queue, EVENTS.queue)


# --- configuration and the project's files ----------------------------------------------------
@dataclass(frozen=True)
class Config:
    steps: tuple[int, ...]
    step_seconds: float
    accounts: int
    fit_min: float
    fit_max: float
    total_tasks: int
    task_size: int
    max_contributors: int
    passes: int
    rows: int
    hidden: int
    projects: int
    seed: int

    @property
    def mean_fit(self) -> float:
        return (self.fit_min + self.fit_max) / 2


def _write_files(directory: str, rows: int, hidden: int, seed: int) -> None:
    """Random rows for the digits MLP; run in a child so TensorFlow stays out of this process."""
    from daig.examples import build_mlp

    rng = np.random.default_rng(seed)
    out = Path(directory)
    np.save(out / "x.npy", rng.random((rows, 64), dtype=np.float32), allow_pickle=False)
    np.save(out / "y.npy", rng.integers(0, 10, rows, dtype=np.int64), allow_pickle=False)
    build_mlp(hidden=hidden).save(out / "model.h5")


def write_files(directory: Path, config: Config) -> dict[str, Path]:
    child = multiprocessing.get_context("spawn").Process(
        target=_write_files, args=(str(directory), config.rows, config.hidden, config.seed)
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


def start_projects(cluster: BenchCluster, files: dict[str, Path], config: Config) -> list[str]:
    params = Hyperparameters(
        epochs=1,
        batch_size=32,
        total_tasks=config.total_tasks,
        task_size=config.task_size,
        max_contributors=config.max_contributors,
        passes=config.passes,
    )
    client = cluster.client("requestor")
    ids = []
    try:
        for index in range(config.projects):
            project = client.create_project(f"dispatch-scale-{index}", params)
            for kind, path in files.items():
                client.upload_file(project["id"], kind, path)
            client.start(project["id"])
            ids.append(str(project["id"]))
        deadline = time.monotonic() + 60
        while any(client.project(p)["state"] != "running" for p in ids):
            if time.monotonic() > deadline:
                raise TimeoutError("the projects did not start running")
            time.sleep(0.2)
    finally:
        client.close()
    return ids


# --- one DAIG account: token, broker user, a broker connection in its own thread ---------------
@dataclass(frozen=True)
class Account:
    name: str
    token: str
    user_id: int
    broker_user: str
    amqp_url: str


def make_accounts(cluster: BenchCluster, count: int) -> list[Account]:
    accounts = []
    for index in range(count):
        name = f"sim{index:03d}"
        client = cluster.client(name)
        try:
            broker = client.provider_config()
        finally:
            client.close()
        assert client.token is not None
        accounts.append(
            Account(
                name=name,
                token=client.token,
                user_id=int(broker["user_id"]),
                broker_user=str(broker["broker_user"]),
                amqp_url=str(broker["amqp_url"]),
            )
        )
    return accounts


@dataclass(frozen=True)
class Delivery:
    channel: BlockingChannel
    tag: int
    body: bytes
    message_type: str | None


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class AccountBroker:
    """An account's broker connection, owned by one thread, used from asyncio.

    pika's ``BlockingConnection`` is not thread-safe: every channel operation runs in the
    connection's thread, queued by the asyncio side and woken with ``add_callback_threadsafe``.
    Deliveries go to an asyncio queue the account's virtual agents share; each ramp step opens
    one more consumer channel whose prefetch equals the agents it adds, so the account never
    holds more task messages than it has agents. If the broker restarts (other people's chaos
    runs share it), the thread reconnects and re-opens its consumers, as the real agent does:
    a task message of the lost channel is redelivered, and its late result is still published.
    """

    def __init__(self, account: Account, loop: asyncio.AbstractEventLoop) -> None:
        self.account = account
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self.reconnects = 0
        self._loop = loop
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._prefetches: list[int] = []  # one consumer channel each
        self._connection: pika.BlockingConnection | None = None
        self._publish: BlockingChannel | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"broker-{account.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._connection is None:
            raise RuntimeError(f"{self.account.name}: broker connection failed: {self.error}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve()
            except (AMQPError, OSError) as exc:
                self.error = exc
                if self._stop.is_set():
                    break
                self.reconnects += 1
                print(f"{self.account.name}: broker connection lost ({exc!r})", file=sys.stderr)
                self._stop.wait(1.0)
            finally:
                connection, self._connection, self._publish = self._connection, None, None
                if connection is not None and connection.is_open:
                    with contextlib.suppress(AMQPError):
                        connection.close()

    def _serve(self) -> None:
        connection = connect(self.account.amqp_url, heartbeat=60)
        self._publish = connection.channel()
        self._publish.confirm_delivery()
        for prefetch in self._prefetches:
            self._consume(connection, prefetch)
        self._connection = connection
        self._ready.set()
        while not self._stop.is_set():
            while True:
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
                call()
            connection.process_data_events(time_limit=0.2)

    def _consume(self, connection: pika.BlockingConnection, prefetch: int) -> None:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)
        channel.basic_consume(TASKS.queue, on_message_callback=self._on_message)

    def _call(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the connection's thread (after a reconnect if need be)."""
        self._calls.put(callback)
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(AMQPError):  # closed: the loop drains the queue later
                connection.add_callback_threadsafe(lambda: None)  # wake the thread up

    def add_consumer(self, prefetch: int) -> None:
        def open_channel() -> None:
            self._prefetches.append(prefetch)
            assert self._connection is not None
            self._consume(self._connection, prefetch)

        self._call(open_channel)

    def _on_message(
        self,
        channel: BlockingChannel,
        method: Any,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        delivery = Delivery(channel, int(method.delivery_tag), body, properties.type)
        self._loop.call_soon_threadsafe(self.deliveries.put_nowait, delivery)

    def settle(
        self, delivery: Delivery, *, ack: bool, result: TrainResult | None = None
    ) -> asyncio.Future[None]:
        """Publish ``result`` (confirmed, as our broker user), then ack or requeue the task."""
        future: asyncio.Future[None] = self._loop.create_future()

        def work() -> None:
            error: BaseException | None = None
            try:
                if result is not None:
                    assert self._publish is not None
                    publish_on(self._publish, RESULTS, result, user_id=self.account.broker_user)
                if not delivery.channel.is_open:
                    pass  # its channel died with a connection: the broker redelivers it
                elif ack:
                    delivery.channel.basic_ack(delivery.tag)
                else:
                    delivery.channel.basic_nack(delivery.tag, requeue=True)
            except Exception as exc:
                error = exc
                if isinstance(exc, AMQPError):  # retried on the next connection
                    self._loop.call_soon_threadsafe(_resolve, future, error)
                    raise
            self._loop.call_soon_threadsafe(_resolve, future, error)

        self._call(work)
        return future


# --- what a ramp step measured on the client side ---------------------------------------------
@dataclass
class Step:
    providers: int
    began: float = field(default_factory=time.monotonic)
    began_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: float | None = None
    ended_wall: datetime | None = None
    claim_latency: list[float] = field(default_factory=list)  # every answered claim
    claims_ok: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    published: int = 0
    publish_latency: list[float] = field(default_factory=list)  # publish confirmed + ack
    uploads: int = 0
    # seconds the agents spent waiting for a task, claiming, in 'fit', sending the result
    agent_seconds: dict[str, float] = field(default_factory=dict)
    loop_lag: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.began


class Run:
    """The step the agents' measurements belong to, and when each result was published."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.published_at: dict[str, float] = {}  # claim id -> wall time of the confirm
        self.broker_reconnects = 0

    @property
    def current(self) -> Step:
        return self.steps[-1]


class Agent:
    """One virtual provider: the real agent's task loop with the training replaced by a sleep."""

    def __init__(
        self,
        name: str,
        account: Account,
        broker: AccountBroker,
        http: httpx.AsyncClient,
        run: Run,
        config: Config,
        seed: int,
    ) -> None:
        self.name = name
        self.account = account
        self.broker = broker
        self.http = http
        self.run = run
        self.config = config
        self.random = random.Random(seed)
        self.rng = np.random.default_rng(seed)

    def _spent(self, state: str, since: float) -> float:
        now = time.perf_counter()
        seconds = self.run.current.agent_seconds
        seconds[state] = seconds.get(state, 0.0) + now - since
        return now

    async def loop(self) -> None:
        while True:
            mark = time.perf_counter()
            delivery = await self.broker.deliveries.get()
            mark = self._spent("waiting", mark)
            await self._one(delivery, mark)

    async def _one(self, delivery: Delivery, mark: float) -> None:
        task = decode(TrainTask, delivery.body, delivery.message_type)
        try:
            response = await self.http.post(
                f"/v1/tasks/{task.task_id}/claim", json={"agent_id": self.name}
            )
        except httpx.HTTPError as exc:
            self.run.current.errors[type(exc).__name__] += 1
            self._spent("claiming", mark)
            await asyncio.sleep(1.0)
            await self.broker.settle(delivery, ack=False)
            return
        step = self.run.current
        step.claim_latency.append(time.perf_counter() - mark)
        mark = self._spent("claiming", mark)
        if response.status_code in (404, 409):
            reason = str(response.json().get("reason") or response.status_code)
            step.refusals[reason] += 1
            if reason == "contributor_cap":  # as the real agent: keep the message for later
                await asyncio.sleep(2.0)
                await self.broker.settle(delivery, ack=False)
            else:
                await self.broker.settle(delivery, ack=True)
            return
        if response.status_code >= 400:
            step.errors[f"claim HTTP {response.status_code}"] += 1
            await asyncio.sleep(1.0)
            await self.broker.settle(delivery, ack=False)
            return
        step.claims_ok += 1
        grant = response.json()
        fit = self.random.uniform(self.config.fit_min, self.config.fit_max)
        await asyncio.sleep(fit)
        mark = self._spent("fit", mark)
        await self._send(grant, delivery, fit)
        self._spent("sending", mark)

    async def _send(self, grant: dict[str, Any], delivery: Delivery, fit: float) -> None:
        delta = self._delta(grant)
        inline = len(delta) <= int(grant.get("inline_max_bytes", 0))
        if not inline:
            response = await self.http.put(grant["result_url"], content=delta)
            if response.status_code >= 300:
                self.run.current.errors[f"upload HTTP {response.status_code}"] += 1
                await self.broker.settle(delivery, ack=True)  # its lease lapses; redone
                return
            self.run.current.uploads += 1
        result = TrainResult(
            project_id=grant["project_id"],
            round=grant["round"],
            task_id=grant["task_id"],
            claim_id=grant["claim_id"],
            provider_id=self.account.user_id,
            status=ResultStatus.TRAINED,
            blob_key=grant["result_key"],
            sha256=hashlib.sha256(delta).hexdigest(),
            inline_delta=base64.b64encode(delta).decode() if inline else None,
            schema_hash=grant["schema_hash"],
            samples=int(grant["data"]["rows"]),
            fit_seconds=fit,
            history={"loss": [1.0], "accuracy": [0.1]},
            timings={"fit": fit},
        )
        began = time.perf_counter()
        try:
            await self.broker.settle(delivery, ack=True, result=result)
        except AMQPError as exc:
            self.run.current.errors[f"publish {type(exc).__name__}"] += 1
            return
        self.run.published_at[str(grant["claim_id"])] = time.time()
        self.run.current.published += 1
        self.run.current.publish_latency.append(time.perf_counter() - began)

    def _delta(self, grant: dict[str, Any]) -> bytes:
        """Small random values in exactly the model's shapes and dtypes."""
        schema = WeightSchema.from_json(grant["weight_schema"])
        arrays = [
            (self.rng.standard_normal(t.shape) * 1e-3).astype(np.dtype(t.dtype))
            for t in schema.tensors
        ]
        return encode_weights(arrays, codec=str(grant.get("delta_codec", "fp32")))


async def watch_loop_lag(run: Run, period: float = 0.1) -> None:
    """How late the event loop wakes up: the load generator's own saturation."""
    while True:
        began = time.perf_counter()
        await asyncio.sleep(period)
        run.current.loop_lag.append(time.perf_counter() - began - period)


# --- sampling CPU and queue depths ------------------------------------------------------------
def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found.append((int(entry), parent, command))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Sample:
    at: float
    ticks: dict[int, int]  # cumulative CPU ticks of every process watched
    pids: dict[str, set[int]]  # component -> its processes now
    machine_busy: int
    machine_total: int
    depths: dict[str, int]
    backends: dict[str, int]  # this database's connections: active, waiting on a lock, ...


class Sampler:
    """Once a second: CPU ticks of each component, the machine's, and the queues' depths."""

    def __init__(self, cluster: BenchCluster, period: float = 1.0) -> None:
        self.samples: list[Sample] = []
        self._period = period
        self._servers = {
            name: process.pid
            for name, process in cluster.processes.processes.items()
            if name in ("api", "scheduler", "aggregator")
        }
        self._database = cluster.database_url.rsplit("/", 1)[1]
        self._engine = create_engine(cluster.database_url, poolclass=NullPool)
        self._amqp_url = cluster.amqp_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._engine.dispose()

    def _pids(self) -> dict[str, set[int]]:
        processes = _processes()
        children: dict[int, list[int]] = {}
        for pid, parent, _ in processes:
            children.setdefault(parent, []).append(pid)

        def tree(root: int) -> set[int]:
            found, todo = set(), [root]
            while todo:
                pid = todo.pop()
                found.add(pid)
                todo.extend(children.get(pid, []))
            return found

        pids = {name: tree(pid) for name, pid in self._servers.items()}
        pids["postgres"] = {
            pid
            for pid, _, command in processes
            if command.startswith("postgres:") and f" {self._database} " in command
        }
        pids["rabbitmq"] = {pid for pid, _, command in processes if "beam.smp" in command}
        pids["generator"] = {os.getpid()}
        return pids

    def _backends(self, pids: dict[str, set[int]]) -> dict[str, int]:
        """This database's other connections by what they do now (a lock wait is the tell).

        Lock waits are also counted per server ("lock_wait:api", ...), found by matching each
        connection's client port to the sockets the server's processes hold.
        """
        query = text(
            "SELECT CASE WHEN wait_event_type = 'Lock' THEN 'lock_wait' ELSE state END, "
            "client_port FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
        )
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query, {"db": self._database}).all()
        except SQLAlchemyError:
            return {}
        owners = _port_owners({n: pids.get(n, set()) for n in ("api", "scheduler", "aggregator")})
        counts: Counter[str] = Counter()
        for state, port in rows:
            counts[str(state)] += 1
            if state == "lock_wait":
                counts[f"lock_wait:{owners.get(port, 'other')}"] += 1
        return dict(counts)

    def _run(self) -> None:
        connection: pika.BlockingConnection | None = None
        channel: BlockingChannel | None = None
        while not self._stop.is_set():
            pids = self._pids()
            depths: dict[str, int] = {}
            try:
                if connection is None or channel is None or not connection.is_open:
                    connection = connect(self._amqp_url, heartbeat=0)
                    channel = connection.channel()
                for name in QUEUES:
                    depths[name] = channel.queue_declare(name, passive=True).method.message_count
            except AMQPError:
                connection = channel = None
            busy, total = _machine_ticks()
            backends = self._backends(pids)
            self.samples.append(
                Sample(
                    at=time.monotonic(),
                    ticks={pid: _cpu_ticks(pid) for group in pids.values() for pid in group},
                    pids=pids,
                    machine_busy=busy,
                    machine_total=total,
                    depths=depths,
                    backends=backends,
                )
            )
            self._stop.wait(self._period)
        if connection is not None and connection.is_open:
            with contextlib.suppress(AMQPError):
                connection.close()


def _port_owners(groups: dict[str, set[int]]) -> dict[int, str]:
    """Local TCP port -> the group whose processes hold that socket (from /proc)."""
    inodes: dict[str, str] = {}
    for name, pids in groups.items():
        for pid in pids:
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        link = os.readlink(f"/proc/{pid}/fd/{fd}")
                        if link.startswith("socket:["):
                            inodes[link[8:-1]] = name
    owners: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    owners[int(fields[1].rsplit(":", 1)[1], 16)] = inodes[fields[9]]
    return owners


def resources(samples: Sequence[Sample], began: float, ended: float) -> dict[str, Any]:
    """CPU (% of one core) per component and machine-wide, queue depths, within a window."""
    window = [s for s in samples if began <= s.at <= ended]
    if len(window) < 2:
        return {}
    cpu: dict[str, float] = {}
    seconds = window[-1].at - window[0].at
    for name in COMPONENTS:
        ticks = 0
        for before, after in zip(window, window[1:], strict=False):
            for pid in after.pids.get(name, set()):
                # A process started in between counts from its birth.
                ticks += max(0, after.ticks.get(pid, 0) - before.ticks.get(pid, 0))
        cpu[name] = 100.0 * ticks / CLOCK_TICKS / seconds
    busy = window[-1].machine_busy - window[0].machine_busy
    total = window[-1].machine_total - window[0].machine_total
    cores = os.cpu_count() or 1
    machine = 100.0 * cores * busy / total if total else 0.0
    depths = {}
    for name in QUEUES:
        values = [s.depths[name] for s in window if name in s.depths]
        if values:
            depths[name] = {
                "mean": statistics.fmean(values),
                "max": max(values),
                "first": values[0],
                "last": values[-1],
            }
    backends = {
        state: statistics.fmean(s.backends.get(state, 0) for s in window)
        for state in (
            "active",
            "lock_wait",
            "idle in transaction",
            "lock_wait:api",
            "lock_wait:scheduler",
            "lock_wait:aggregator",
        )
    }
    others = machine - sum(cpu.values())
    return {
        "cpu": cpu,
        "machine_cpu": machine,
        "other_cpu": max(0.0, others),
        "queues": depths,
        "db_backends_mean": backends,
    }


# --- the ramp ---------------------------------------------------------------------------------
async def ramp(cluster: BenchCluster, accounts: list[Account], config: Config) -> Run:
    loop = asyncio.get_running_loop()
    run = Run()
    brokers = [AccountBroker(account, loop) for account in accounts]
    for broker in brokers:
        broker.start()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    clients = [
        httpx.AsyncClient(
            base_url=cluster.api_url,
            headers={"Authorization": f"Bearer {account.token}"},
            timeout=120.0,
            limits=limits,
        )
        for account in accounts
    ]
    tasks: list[asyncio.Task[None]] = []
    run.steps.append(Step(providers=0))
    tasks.append(asyncio.create_task(watch_loop_lag(run)))
    try:
        agents = 0
        for target in config.steps:
            added: Counter[int] = Counter()
            while agents < target:
                index = agents % len(accounts)
                agent = Agent(
                    f"sim-agent-{agents:04d}",
                    accounts[index],
                    brokers[index],
                    clients[index],
                    run,
                    config,
                    seed=config.seed * 100_003 + agents,
                )
                tasks.append(asyncio.create_task(agent.loop()))
                added[index] += 1
                agents += 1
            for index, count in added.items():
                brokers[index].add_consumer(count)
            run.current.ended, run.current.ended_wall = time.monotonic(), datetime.now(UTC)
            run.steps.append(Step(providers=agents))
            print(f"step: {agents} virtual providers for {config.step_seconds:.0f} s", flush=True)
            await asyncio.sleep(config.step_seconds)
        run.current.ended, run.current.ended_wall = time.monotonic(), datetime.now(UTC)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()
        for broker in brokers:
            broker.stop()
        run.broker_reconnects = sum(broker.reconnects for broker in brokers)
    run.steps.pop(0)  # the set-up before the first step
    return run


# --- reading the database and summarising -----------------------------------------------------
def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def summarize_step(
    cluster: BenchCluster, run: Run, step: Step, samples: Sequence[Sample], config: Config
) -> dict[str, Any]:
    began, ended = step.began_wall, step.ended_wall
    assert ended is not None and step.ended is not None
    seconds = step.seconds
    claims = cluster.sql(
        "SELECT count(*) FROM claims WHERE claimed_at >= :a AND claimed_at < :b", a=began, b=ended
    )[0][0]
    results = cluster.sql(
        "SELECT claim_id, status, reason, received_at FROM results "
        "WHERE received_at >= :a AND received_at < :b",
        a=began,
        b=ended,
    )
    rounds = cluster.sql(
        "SELECT count(*) FROM rounds WHERE closed_at >= :a AND closed_at < :b", a=began, b=ended
    )[0][0]
    accepted = sum(1 for r in results if r[1] == "accepted")
    not_accepted = Counter(str(r[2] or r[1]) for r in results if r[1] != "accepted")
    lags = [
        r[3].timestamp() - run.published_at[str(r[0])]
        for r in results
        if str(r[0]) in run.published_at
    ]
    busy = (
        step.agent_seconds.get("fit", 0.0) / (step.providers * seconds) if step.providers else 0.0
    )
    return {
        "providers": step.providers,
        "seconds": round(seconds, 1),
        "offered_tasks_per_s": round(step.providers / config.mean_fit, 1),
        "claims_per_s": round(step.claims_ok / seconds, 1),
        "claims_per_s_db": round(claims / seconds, 1),
        "results_published_per_s": round(step.published / seconds, 1),
        "results_accepted_per_s": round(accepted / seconds, 1),
        "results_not_accepted": dict(not_accepted),
        "rounds_closed": rounds,
        "claim_latency_ms": {
            "p50": _ms(_percentile(step.claim_latency, 50)),
            "p99": _ms(_percentile(step.claim_latency, 99)),
            "max": _ms(max(step.claim_latency, default=None)),
            "count": len(step.claim_latency),
        },
        "refusals": dict(step.refusals),
        "errors": dict(step.errors),
        "publish_ms": {
            "p50": _ms(_percentile(step.publish_latency, 50)),
            "p99": _ms(_percentile(step.publish_latency, 99)),
        },
        "result_lag_ms": {"p50": _ms(_percentile(lags, 50)), "p99": _ms(_percentile(lags, 99))},
        "uploads": step.uploads,
        "providers_busy": round(busy, 3),
        "agent_seconds": {k: round(v, 1) for k, v in step.agent_seconds.items()},
        "loop_lag_ms": {
            "p50": _ms(_percentile(step.loop_lag, 50)),
            "p99": _ms(_percentile(step.loop_lag, 99)),
        },
        **resources(samples, step.began, step.ended),
    }


def bottlenecks(row: dict[str, Any]) -> list[str]:
    """What is at its limit in a step, most telling first."""
    found = []
    queues = row.get("queues", {})
    results_queue = queues.get(RESULTS.queue, {})
    if results_queue.get("max", 0) > 50 and results_queue["last"] > results_queue["first"]:
        found.append(f"aggregator backlog ({results_queue['max']} results waiting)")
    waits = row.get("db_backends_mean", {})
    if waits.get("lock_wait:aggregator", 0.0) >= 0.3:
        found.append(
            f"aggregator waiting on a row lock {waits['lock_wait:aggregator']:.0%} of the time "
            f"(API connections waiting: {waits.get('lock_wait:api', 0.0):.1f} on average)"
        )
    events = queues.get(EVENTS.queue, {})
    if events.get("max", 0) > 50:
        found.append(f"scheduler event backlog ({events['max']} events waiting)")
    for name in ("api", "scheduler", "aggregator", "generator"):
        cpu = row.get("cpu", {}).get(name, 0.0)
        if cpu >= 80:  # one Python process: one core (GIL)
            found.append(f"{name} CPU {cpu:.0f}% of a core")
    cores = os.cpu_count() or 1
    if row.get("machine_cpu", 0.0) >= 90 * cores:
        found.append(f"machine CPU {row['machine_cpu']:.0f}% of {cores * 100}%")
    return found


def saturation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first step where throughput stops following the offered load, or latency explodes."""
    if not rows:
        return {}
    base_p99 = rows[0]["claim_latency_ms"]["p99"] or 1.0
    best = rows[0]
    if rows[0]["claims_per_s"] < 0.5 * rows[0]["offered_tasks_per_s"]:
        return {
            "providers": rows[0]["providers"],
            "why": [
                f"already at the first step: {rows[0]['claims_per_s']:.1f} claims/s of "
                f"{rows[0]['offered_tasks_per_s']:.1f} offered"
            ],
            "bottlenecks": bottlenecks(rows[0]),
            "peak_results_accepted_per_s": max(r["results_accepted_per_s"] for r in rows),
            "peak_claims_per_s": max(r["claims_per_s"] for r in rows),
        }
    for previous, row in zip(rows, rows[1:], strict=False):
        offered = row["offered_tasks_per_s"] / max(previous["offered_tasks_per_s"], 1e-9)
        done = row["results_accepted_per_s"] / max(previous["results_accepted_per_s"], 1e-9)
        p99 = row["claim_latency_ms"]["p99"] or 0.0
        why = []
        if row["claims_per_s"] < 0.5 * row["offered_tasks_per_s"]:
            why.append(
                f"{row['claims_per_s']:.1f} claims/s of {row['offered_tasks_per_s']:.1f} offered"
            )
        if done - 1 < 0.25 * (offered - 1):
            why.append(
                f"accepted results/s grew x{done:.2f} while the offered load grew x{offered:.2f}"
            )
        if p99 > max(5 * base_p99, 1000.0):
            why.append(f"p99 claim latency {p99:.0f} ms (first step {base_p99:.0f} ms)")
        if row["results_accepted_per_s"] > best["results_accepted_per_s"]:
            best = row
        if why:
            return {
                "providers": row["providers"],
                "why": why,
                "bottlenecks": bottlenecks(row) or bottlenecks(previous),
                "peak_results_accepted_per_s": max(r["results_accepted_per_s"] for r in rows),
                "peak_claims_per_s": max(r["claims_per_s"] for r in rows),
            }
    return {
        "providers": None,
        "why": ["throughput followed the offered load at every step"],
        "bottlenecks": bottlenecks(rows[-1]),
        "peak_results_accepted_per_s": best["results_accepted_per_s"],
        "peak_claims_per_s": max(r["claims_per_s"] for r in rows),
    }


def _fmt(value: float | None, width: int, digits: int = 0) -> str:
    return f"{'-' if value is None else f'{value:.{digits}f}':>{width}}"


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'prov':>5}{'offer/s':>8}{'claim/s':>8}{'acc/s':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'refused':>8}{'err':>5}{'lag p99':>8}{'busy':>6}{'api%':>6}{'sch%':>6}{'agg%':>6}"
        f"{'pg%':>6}{'mq%':>6}{'gen%':>6}{'host%':>7}{'q.task':>7}{'q.res':>6}{'q.evt':>6}"
        f"{'lockw':>6}{'aggW':>5}"
    )
    print(header)
    for row in rows:
        cpu = row.get("cpu", {})
        queues = row.get("queues", {})
        print(
            f"{row['providers']:>5}{_fmt(row['offered_tasks_per_s'], 8)}"
            f"{_fmt(row['claims_per_s'], 8, 1)}{_fmt(row['results_accepted_per_s'], 7, 1)}"
            f"{_fmt(row['claim_latency_ms']['p50'], 8)}{_fmt(row['claim_latency_ms']['p99'], 8)}"
            f"{sum(row['refusals'].values()):>8}{sum(row['errors'].values()):>5}"
            f"{_fmt(row['result_lag_ms']['p99'], 8)}{_fmt(100 * row['providers_busy'], 5)}%"
            + "".join(
                _fmt(cpu.get(n), 6)
                for n in ("api", "scheduler", "aggregator", "postgres", "rabbitmq", "generator")
            )
            + _fmt(row.get("machine_cpu"), 7)
            + "".join(
                _fmt(queues.get(q, {}).get("max"), w)
                for q, w in ((TASKS.queue, 7), (RESULTS.queue, 6), (EVENTS.queue, 6))
            )
            + _fmt(row.get("db_backends_mean", {}).get("lock_wait"), 6, 1)
            + _fmt(row.get("db_backends_mean", {}).get("lock_wait:aggregator"), 5, 2)
        )
    print(
        "prov: virtual providers; offer/s: providers / mean fit time; claim/s: granted claims; "
        "acc/s: results accepted (database);\np50/p99: claim latency; lag p99: result publish -> "
        "recorded by the aggregator (ms); busy: share of provider time spent 'fitting';\n"
        "CPU in % of one core (api, scheduler, aggregator, postgres backends of this database, "
        "rabbitmq, this generator, whole host); q.*: most messages ready in a queue;\n"
        "lockw: mean number of this database's connections waiting on a lock; aggW: of them, "
        "the aggregator's (its share of time spent waiting for a row lock)."
    )


# --- main -------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100, 250, 500, 750])
    parser.add_argument("--step-seconds", type=float, default=40.0)
    parser.add_argument("--accounts", type=int, default=25)
    parser.add_argument("--fit", type=float, nargs=2, default=[0.5, 2.0], metavar=("MIN", "MAX"))
    parser.add_argument("--total-tasks", type=int, default=2000)
    parser.add_argument("--task-size", type=int, default=1000, help="K, results per round")
    parser.add_argument("--max-contributors", type=int, default=None, help="default: K")
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--rows", type=int, default=None, help="data rows (default: 2 x shards)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of the digits MLP")
    parser.add_argument("--projects", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if sorted(args.steps) != args.steps:
        parser.error("--steps must increase")
    return Config(
        steps=tuple(args.steps),
        step_seconds=args.step_seconds,
        accounts=args.accounts,
        fit_min=args.fit[0],
        fit_max=args.fit[1],
        total_tasks=args.total_tasks,
        task_size=args.task_size,
        max_contributors=args.max_contributors or args.task_size,
        passes=args.passes,
        rows=args.rows or 2 * args.total_tasks,
        hidden=args.hidden,
        projects=args.projects,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    random.seed(config.seed)
    with tempfile.TemporaryDirectory(prefix="daig-dispatch-") as work:  # removed afterwards
        files = write_files(Path(work), config)
        return run_benchmark(config, files)


def run_benchmark(config: Config, files: dict[str, Path]) -> int:
    """Start the cluster and the projects, ramp the providers, print the table and JSON."""
    began = datetime.now(UTC)
    load = os.getloadavg()
    with bench_cluster() as cluster:
        accounts = make_accounts(cluster, config.accounts)
        projects = start_projects(cluster, files, config)
        print(
            f"cluster up: {len(accounts)} accounts, {len(projects)} project(s) of "
            f"{config.total_tasks} shards, K={config.task_size}, "
            f"max_contributors={config.max_contributors}",
            flush=True,
        )
        sampler = Sampler(cluster)
        sampler.start()
        try:
            run = asyncio.run(ramp(cluster, accounts, config))
        finally:
            sampler.stop()
        time.sleep(2.0)  # let the aggregator record what was published last
        rows = [summarize_step(cluster, run, s, sampler.samples, config) for s in run.steps]
        totals = cluster.sql(
            "SELECT status, coalesce(reason, ''), count(*) FROM results GROUP BY 1, 2"
        )
        rounds = cluster.sql("SELECT count(*) FROM rounds WHERE closed_at IS NOT NULL")[0][0]
    print()
    print_table(rows)
    verdict = saturation(rows)
    print()
    if verdict.get("providers"):
        print(f"saturates at {verdict['providers']} providers: {'; '.join(verdict['why'])}")
    else:
        print(verdict["why"][0])
    print(f"bottlenecks there: {'; '.join(verdict['bottlenecks']) or 'none found'}")
    print(
        f"peak: {verdict['peak_results_accepted_per_s']} results accepted/s, "
        f"{verdict['peak_claims_per_s']} claims/s"
    )
    report = {
        "date": began.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load},
        "config": asdict(config),
        "steps": rows,
        "saturation": verdict,
        "results_total": {f"{s}:{r}" if r else s: n for s, r, n in totals},
        "rounds_closed": rounds,
        "broker_reconnects": run.broker_reconnects,
        "project_ids": projects,
    }
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
