"""Sampling the machine once a second, in a child process so the generator's CPU stays its own.

Each sample holds the cumulative CPU ticks of every process watched, grouped: one group per
process of the cluster's table (``api``, ``aggregator-2``, ... with their children), the
Postgres backends of the benchmark's database (``postgres``, less the sampler's own), the
Postgres processes every database shares (``postgres_shared``: postmaster, WAL writer,
checkpointer...), RabbitMQ's process tree, the generator and the sampler itself. It also
holds the machine's busy/total ticks, ready messages per queue group (management API, every
other sample) and what the database's connections are doing (lock waits by role).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bench.dispatch.queues import QueueReader

ROLES = ("api", "scheduler", "aggregator")
POSTGRES_SHARED = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
    "archiver",
    "walsender",
)


def role_of(name: str) -> str:
    """A cluster process's role from its name: ``aggregator-2`` -> ``aggregator``."""
    for role in ROLES:
        if name.startswith(role):
            return role
    return name.rstrip("0123456789-_.") or name


@dataclass(frozen=True)
class Watch:
    """What to watch (sent to the child process)."""

    processes: dict[str, int]  # cluster process name -> pid
    generator: int
    database_url: str
    amqp_url: str
    period: float = 1.0


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic(), the same clock in every process
    ticks: dict[int, int]  # cumulative CPU ticks of every process watched
    groups: dict[str, tuple[int, ...]]  # group -> its processes now
    machine_busy: int
    machine_total: int
    queues: dict[str, int]  # queue group -> ready messages; empty when not read
    backends: dict[str, int]  # the database's connections: active, lock_wait, lock_wait:api...


def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def _cpu_ticks(pid: int) -> int:
    try:
        fields = _stat_fields(pid)
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
            parent = int(_stat_fields(entry)[1])
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


def _trees(processes: list[tuple[int, int, str]], roots: dict[str, int]) -> dict[str, set[int]]:
    """Each root's process and its descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent, _ in processes:
        children.setdefault(parent, []).append(pid)
    trees = {}
    for name, root in roots.items():
        found, todo = set(), [root]
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, []))
        trees[name] = found
    return trees


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


class _Probe:
    """The child's side: takes one ``Sample`` at a time."""

    def __init__(self, watch: Watch) -> None:
        self._watch = watch
        self._database = make_url(watch.database_url).database or ""
        self._engine = create_engine(watch.database_url, pool_size=1, max_overflow=0)
        self._backend_pid = self._own_backend()
        self._queues = QueueReader(watch.amqp_url)
        self._count = 0

    def _own_backend(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def groups(self) -> dict[str, set[int]]:
        processes = _processes()
        roots = dict(self._watch.processes)
        # The broker's Erlang VM (not a passing rabbitmqctl's) and its children.
        beam = [pid for pid, _, cmd in processes if "beam.smp" in cmd and "rabbit boot" in cmd]
        if beam:
            roots["rabbitmq"] = min(beam)
        groups = _trees(processes, roots)
        postgres, shared = set(), set()
        for pid, _, command in processes:
            words = command.split()
            if command.startswith("postgres:") and self._database in words:
                postgres.add(pid)
            elif command.startswith("postgres:") and any(k in command for k in POSTGRES_SHARED):
                shared.add(pid)
            elif words and words[0].endswith("/bin/postgres"):
                shared.add(pid)  # the postmaster: forks every new connection
        groups["postgres"] = postgres - {self._backend_pid}
        groups["postgres_shared"] = shared
        groups["generator"] = {self._watch.generator}
        groups["sampler"] = {os.getpid()}
        return groups

    def backends(self, groups: dict[str, set[int]]) -> dict[str, int]:
        """This database's other connections by what they do now, lock waits by role."""
        query = text(
            "SELECT CASE WHEN wait_event_type = 'Lock' THEN 'lock_wait' ELSE state END, "
            "client_port FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
        )
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query, {"db": self._database}).all()
        except SQLAlchemyError:
            return {}
        owners = _port_owners({name: groups[name] for name in self._watch.processes})
        counts: Counter[str] = Counter()
        for state, port in rows:
            counts[str(state)] += 1
            if state == "lock_wait":
                counts[f"lock_wait:{role_of(owners.get(port, 'other'))}"] += 1
        return dict(counts)

    def sample(self) -> Sample:
        groups = self.groups()
        busy, total = _machine_ticks()
        self._count += 1
        return Sample(
            at=time.monotonic(),
            ticks={pid: _cpu_ticks(pid) for pids in groups.values() for pid in pids},
            groups={name: tuple(pids) for name, pids in groups.items()},
            machine_busy=busy,
            machine_total=total,
            queues=self._queues.grouped() if self._count % 2 else {},
            backends=self.backends(groups),
        )

    def close(self) -> None:
        self._queues.close()
        self._engine.dispose()


def _run(watch: Watch, ready: Event, stop: Event, out: Connection) -> None:
    """The child process: sample every ``period`` until ``stop``, then send the samples."""
    probe = _Probe(watch)
    samples = []
    try:
        while not stop.is_set():
            samples.append(probe.sample())
            ready.set()
            stop.wait(watch.period)
    finally:
        probe.close()
        out.send(samples)
        out.close()


class Sampler:
    """The parent's side: start the child, and collect its samples when stopping it."""

    def __init__(self, watch: Watch) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_run,
            args=(watch, self._ready, self._stop, send),
            name="dispatch-sampler",
            daemon=True,
        )

    def start(self, timeout: float = 120) -> None:
        """Start the child and wait for its first sample (its imports take seconds)."""
        self._process.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the sampler process did not start sampling")

    def stop(self) -> list[Sample]:
        self._stop.set()
        samples: list[Sample] = []
        if self._receive.poll(60):
            samples = self._receive.recv()
        self._process.join(10)
        return samples
