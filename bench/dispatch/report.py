"""The verdict and the printout: bottlenecks per step, the knee, the table, the JSON line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

# The targets: below the knee, a step keeps up with the offered load and these hold.
KEPT_UP = 0.9  # accepted/s at least this share of the offered tasks/s
BUSY = 0.9  # providers busy at least this share of the time
CLAIM_P99_MS = 200.0
SERVER = ("api", "scheduler", "aggregator", "postgres", "rabbitmq")


def failures(row: dict[str, Any]) -> list[str]:
    """Which of the knee's conditions a step misses (none: it is below the knee)."""
    missed = []
    offered, accepted = row["offered_tasks_per_s"], row["results_accepted_per_s"]
    if accepted < KEPT_UP * offered:
        missed.append(f"{accepted:.1f} accepted/s of {offered:.1f} offered")
    if row["providers_busy"] < BUSY:
        missed.append(
            f"providers {row['providers_busy']:.0%} busy "
            f"(round-barrier ceiling {row['busy_ceiling']:.0%})"
        )
    p99 = row["claim_latency_ms"]["p99"]
    if p99 is None or p99 > CLAIM_P99_MS:
        missed.append(f"claim p99 {p99} ms")
    return missed


def _closest_to_a_core(row: dict[str, Any]) -> tuple[str, float] | None:
    """The server part nearest a full core: a single Python process, Postgres or RabbitMQ."""
    cpu = row.get("cpu")
    if not cpu:
        return None  # no samples in the step
    candidates = dict(row.get("cpu_busiest_process", {}))
    for name in ("postgres", "rabbitmq"):
        candidates[name] = cpu.get(name, 0.0)
    return max(candidates.items(), key=lambda item: item[1], default=None)


def _generator_limit(row: dict[str, Any]) -> list[str]:
    """The generator itself near a full core: the server was offered less than it seems."""
    cpu = row.get("generator", {}).get("cpu_percent", 0.0)
    return [f"the load generator itself ({cpu:.0f}% of a core)"] if cpu >= 70 else []


def _starved(row: dict[str, Any]) -> list[str]:
    """A lagging event loop with CPU to spare: the machine, not the generator, is short."""
    generator = row.get("generator", {})
    lag = generator.get("loop_lag_ms", {}).get("p99")
    if lag is None or lag <= 50 or generator.get("cpu_percent", 0.0) >= 70:
        return []
    return [f"generator's event loop lagging {lag:.0f} ms p99 (the machine is short of CPU)"]


def _backlogs(row: dict[str, Any]) -> list[str]:
    queues, found = row.get("queues", {}), []
    results = queues.get("results", {})
    if results.get("max", 0) > 50 and results["last"] > results["first"]:
        found.append(f"aggregator backlog ({results['max']} results waiting)")
    events = queues.get("events", {})
    if events.get("max", 0) > 50:
        found.append(f"scheduler event backlog ({events['max']} events waiting)")
    waiting = row.get("provider_time", {}).get("waiting", 0.0)
    tasks = queues.get("tasks", {})
    if waiting > 0.1 and tasks.get("mean", 0) < 0.1 * row["providers"]:
        found.append(
            f"providers waiting for task messages {waiting:.0%} of the time, tasks queue "
            f"~{tasks.get('mean', 0):.0f} deep (dispatch, or the round barrier)"
        )
    return found


def _lock_waits(row: dict[str, Any]) -> list[str]:
    waits, found = row.get("db_backends_mean", {}), []
    if waits.get("lock_wait:aggregator", 0.0) >= 0.3:
        found.append(
            f"aggregator waiting on a row lock {waits['lock_wait:aggregator']:.0%} of the time"
        )
    if waits.get("lock_wait:api", 0.0) >= 1.0:
        found.append(f"{waits['lock_wait:api']:.1f} API connections waiting on locks on average")
    return found


def bottlenecks(row: dict[str, Any]) -> list[str]:
    """What is at its limit in a step, most telling first."""
    found = _generator_limit(row) + _backlogs(row) + _lock_waits(row)
    closest = _closest_to_a_core(row)
    if closest is not None and closest[1] >= 80:
        found.append(f"{closest[0]} CPU {closest[1]:.0f}% of a core")
    cores = os.cpu_count() or 1
    if row.get("machine_cpu", 0.0) >= 90 * cores:
        found.append(f"machine CPU {row['machine_cpu']:.0f}% of {cores * 100}%")
    if closest is not None and not any(closest[0] in f for f in found):
        found.append(f"closest to a full core: {closest[0]} ({closest[1]:.0f}%)")
    return found + _starved(row)


def knee(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The largest step below the knee, the saturation throughput, and what limits it."""
    if not rows:
        return {}
    passing = [row for row in rows if not failures(row)]
    best = passing[-1] if passing else None  # the largest step that meets the targets
    past = next(
        (r for r in rows if failures(r) and (best is None or r["providers"] > best["providers"])),
        None,
    )
    limited = past or rows[-1]
    return {
        "knee_providers": best["providers"] if best else None,
        "knee_accepted_per_s": best["results_accepted_per_s"] if best else None,
        "saturation_accepted_per_s": max(r["results_accepted_per_s"] for r in rows),
        "saturation_claims_per_s": max(r["claims_per_s"] for r in rows),
        "first_step_past_knee": past["providers"] if past else None,
        "why": failures(past) if past else ["every step kept up"],
        "limited_by": bottlenecks(limited),
    }


def _fmt(value: float | None, width: int, digits: int = 0) -> str:
    return f"{'-' if value is None else f'{value:.{digits}f}':>{width}}"


Column = tuple[str, int, int, Callable[[dict[str, Any]], float | None]]


def _cpu(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda row: row.get("cpu", {}).get(name)


def _columns(projects: int) -> list[Column]:
    columns: list[Column] = [
        ("prov", 5, 0, lambda r: r["providers"]),
        ("offer/s", 8, 0, lambda r: r["offered_tasks_per_s"]),
        ("claim/s", 8, 1, lambda r: r["claims_per_s"]),
        ("acc/s", 7, 1, lambda r: r["results_accepted_per_s"]),
        ("p50ms", 7, 0, lambda r: r["claim_latency_ms"]["p50"]),
        ("p99ms", 7, 0, lambda r: r["claim_latency_ms"]["p99"]),
        ("busy%", 6, 0, lambda r: 100 * r["providers_busy"]),
        ("refus", 6, 0, lambda r: sum(r["refusals"].values())),
        ("lag99", 7, 0, lambda r: r["result_lag_ms"]["p99"]),
        *((label, 5, 0, _cpu(name)) for label, name in _CPU_COLUMNS),
        ("host%", 6, 0, lambda r: r.get("machine_cpu")),
        ("srvms", 6, 1, lambda r: r["server_cpu_ms_per_task"]),
        ("genms", 6, 2, lambda r: r["generator"]["cpu_ms_per_task"]),
        ("loop", 5, 0, lambda r: r["generator"]["loop_lag_ms"]["p99"]),
        ("q.task", 7, 0, lambda r: r.get("queues", {}).get("tasks", {}).get("max")),
        ("q.res", 6, 0, lambda r: r.get("queues", {}).get("results", {}).get("max")),
        ("lockw", 6, 1, lambda r: r.get("db_backends_mean", {}).get("lock_wait")),
    ]
    if projects > 1:
        columns += [
            ("shmin%", 7, 1, lambda r: _percent(r["projects"]["share_min"])),
            ("shmax%", 7, 1, lambda r: _percent(r["projects"]["share_max"])),
            ("jain", 6, 3, lambda r: r["projects"]["jain"]),
        ]
    return columns


_CPU_COLUMNS = (
    ("api%", "api"),
    ("sch%", "scheduler"),
    ("agg%", "aggregator"),
    ("pg%", "postgres"),
    ("mq%", "rabbitmq"),
    ("gen%", "generator"),
)


def _percent(share: float | None) -> float | None:
    return None if share is None else 100 * share


LEGEND = """\
prov: simulated providers; offer/s: providers / mean fit time; claim/s: claims granted
(generator); acc/s: results accepted (database timestamps); p50ms/p99ms: claim latency;
busy%: provider time spent fitting or sending a result; refus: claims refused (reasons below);
lag99: result published -> recorded by the aggregator, p99 ms; api% sch% agg% pg% mq% gen%:
CPU in % of one core (all processes of a role; postgres: this database's backends + shared
processes; mq: all of RabbitMQ); host%: whole machine (100% per core); srvms: server CPU
(api+scheduler+aggregator+postgres+rabbitmq) per accepted task, ms; genms: generator CPU per
result it published, ms; loop: generator event-loop lag p99, ms; q.task/q.res: most messages
ready in the tasks / results queues (summed); lockw: mean database connections waiting on a
lock; shmin%/shmax%/jain: smallest and largest project share of claims, Jain's index."""


def print_table(rows: Sequence[dict[str, Any]], projects: int) -> None:
    columns = _columns(projects)
    print("".join(f"{label:>{width}}" for label, width, _, _ in columns))
    for row in rows:
        print("".join(_fmt(get(row), width, digits) for _, width, digits, get in columns))
    print(LEGEND)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda i: -i[1])) or "-"


def print_details(rows: Sequence[dict[str, Any]], totals: dict[str, Any]) -> None:
    """Per step: refusals and errors by reason, and the generator's counts against the DB's.

    Within a step the two sides' claim counts differ by the claims in flight at its edges
    (the generator counts a claim when answered, the database when it was made); over the
    whole run by the claims still unanswered when the run stopped (counted).
    """
    for row in rows:
        print(
            f"{row['providers']:>5} providers: refused {_counts(row['refusals'])}; "
            f"not accepted {_counts(row['results_not_accepted'])}; "
            f"errors {_counts(row['errors'])}; claims generator/db {row['claims']}/"
            f"{row['claims_db']}; results published/accepted {row['results_published']}/"
            f"{row['results_accepted']}; busy ceiling {row['busy_ceiling']:.0%}"
        )
    print(
        f"whole run: claims granted {totals['claims_generator']} + unanswered at the stop "
        f"{totals['claims_unanswered']} (generator) / {totals['claims_db']} (database); "
        f"results published {totals['results_published']}, in the database "
        f"{_counts(totals['results_db'])}"
    )


def print_verdict(verdict: dict[str, Any]) -> None:
    if verdict.get("knee_providers") is None:
        print("knee: no step met the targets", end="")
    else:
        print(
            f"knee: {verdict['knee_providers']} providers "
            f"({verdict['knee_accepted_per_s']} tasks accepted/s)",
            end="",
        )
    print(
        f"; saturation: {verdict['saturation_accepted_per_s']} accepted/s, "
        f"{verdict['saturation_claims_per_s']} claims/s"
    )
    if verdict.get("first_step_past_knee") is not None:
        print(f"past the knee at {verdict['first_step_past_knee']}: {'; '.join(verdict['why'])}")
    print(f"limited by: {'; '.join(verdict['limited_by']) or 'nothing found'}")


def print_json(report: dict[str, Any]) -> None:
    print(json.dumps(report, default=str, separators=(",", ":")))
