"""The benchmark's command line, and the project shape it implies.

Demand is given as totals over all projects (``--task-size``, ``--total-tasks``,
``--max-contributors``); with ``--projects N`` each project gets an equal 1/N of each, so the
one-project and the many-project runs offer the same work. By default a round holds
``ROUND_PER_PROVIDER`` tasks per provider of the largest step: K-batch SGD is synchronous, so
providers that finish a round's last tasks wait for its slowest one, and with fewer tasks per
provider per round that barrier alone keeps them from being 90% busy (``barrier_ceiling``).
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass

from daig.hyperparams import Hyperparameters

DEFAULT_STEPS = (100, 250, 500, 1000)
# Tasks per round per provider of the largest step: the round barrier then idles providers
# ~6% of the time with zero server latency (10 per provider: ~10%).
ROUND_PER_PROVIDER = 20


def field_limit(name: str) -> int:
    """The API's upper limit on a hyperparameter (``le`` of its field)."""
    for rule in Hyperparameters.model_fields[name].metadata:
        limit = getattr(rule, "le", None)
        if limit is not None:
            return int(limit)
    raise LookupError(f"{name} has no upper limit")


@dataclass(frozen=True)
class Config:
    """Everything a run depends on; printed into the JSON report."""

    steps: tuple[int, ...]
    step_seconds: float
    warmup_seconds: float
    accounts: int
    providers_per_connection: int
    fit_min: float
    fit_max: float
    projects: int
    task_size: int  # K summed over the projects
    total_tasks: int  # shards summed over the projects
    max_contributors: int  # summed over the projects
    passes: int
    hidden: int
    seed: int

    @property
    def mean_fit(self) -> float:
        return (self.fit_min + self.fit_max) / 2

    @property
    def measured_seconds(self) -> float:
        return self.step_seconds - self.warmup_seconds

    def per_project(self, total: int) -> int:
        """A project's share of a total (at least 1)."""
        return max(1, total // self.projects)

    @property
    def rows(self) -> int:
        """Data rows of each project: two per shard."""
        return 2 * self.per_project(self.total_tasks)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dispatch_scale",
        description="Ramp simulated providers against a fresh DAIG cluster; print per-step "
        "throughput, latency, CPU per task, the knee and what limits it (bench/README.md).",
    )
    add = parser.add_argument
    add("--steps", type=int, nargs="+", default=list(DEFAULT_STEPS), help="providers per step")
    add("--step-seconds", type=float, default=40.0, help="length of each step")
    add(
        "--warmup",
        type=float,
        default=None,
        help="seconds at the start of each step left out of its figures (default: a quarter)",
    )
    add("--accounts", type=int, default=25, help="DAIG accounts the providers are spread over")
    add(
        "--providers-per-connection",
        type=int,
        default=20,
        help="simulated providers sharing one AMQP connection of their account (each has its "
        "own channel with prefetch 1); RabbitMQ's socket limit rules out one per provider",
    )
    add("--fit", type=float, nargs=2, default=[0.5, 2.0], metavar=("MIN", "MAX"))
    add("--projects", type=int, default=1, help="projects sharing the demand equally")
    add(
        "--task-size",
        type=int,
        default=None,
        help=f"K summed over the projects (default: {ROUND_PER_PROVIDER} x the largest step)",
    )
    add("--total-tasks", type=int, default=None, help="shards summed over projects (default: 2K)")
    add("--max-contributors", type=int, default=None, help="summed over projects (default: K)")
    add("--passes", type=int, default=50, help="sweeps over the shards (enough not to finish)")
    add("--hidden", type=int, default=64, help="hidden units of the digits MLP (delta size)")
    add("--seed", type=int, default=0)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = _parser()
    args = parser.parse_args(argv)
    if sorted(args.steps) != args.steps or min(args.steps) < 1:
        parser.error("--steps must be positive and increase")
    if args.warmup is None:
        args.warmup = args.step_seconds / 4
    if not 0 <= args.warmup < args.step_seconds:
        parser.error("--warmup must be shorter than --step-seconds")
    if not 0 < args.fit[0] <= args.fit[1]:
        parser.error("--fit needs 0 < MIN <= MAX")
    # The same total demand whatever --projects: a one-project run's K is the API's limit.
    task_size = args.task_size or min(
        ROUND_PER_PROVIDER * max(args.steps), field_limit("task_size")
    )
    if task_size < args.projects:
        parser.error("--task-size must give each project at least one task per round")
    return Config(
        steps=tuple(args.steps),
        step_seconds=args.step_seconds,
        warmup_seconds=args.warmup,
        accounts=args.accounts,
        providers_per_connection=max(1, args.providers_per_connection),
        fit_min=args.fit[0],
        fit_max=args.fit[1],
        projects=args.projects,
        task_size=task_size,
        total_tasks=args.total_tasks or 2 * task_size,
        max_contributors=args.max_contributors or task_size,
        passes=args.passes,
        hidden=args.hidden,
        seed=args.seed,
    )


def barrier_ceiling(providers: int, config: Config, rounds: int = 6) -> float:
    """Share of time providers can fit at most, given the round barrier alone.

    Simulates the providers working through rounds of K tasks (random fit times, zero
    latency anywhere): the next round starts when the previous one's last task ends. With
    several projects their rounds interleave, so this one-project figure is a lower bound.
    """
    tasks = max(1, config.task_size)
    # The ratio of tasks to providers sets the ceiling; scale down to keep this quick.
    scale = max(1.0, providers / 200)
    count, tasks = max(1, round(providers / scale)), max(1, round(tasks / scale))
    rng = random.Random(0)
    now = work = 0.0
    for _ in range(rounds):
        free = [now] * count
        end = now
        for _ in range(tasks):
            start = heapq.heappop(free)
            fit = rng.uniform(config.fit_min, config.fit_max)
            work += fit
            heapq.heappush(free, start + fit)
            end = max(end, start + fit)
        now = end
    return work / (count * now) if now else 1.0
