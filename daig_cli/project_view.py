"""How the CLI shows a project: its summary, its rounds, and the estimate before Start."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from daig.contract.http import EstimateOut, ProjectOut, RoundOut
from daig.credits.units import credits_text
from daig.elapsed import duration_text
from daig.failures import failure_text


def summary(project: ProjectOut) -> str:
    """State, round r of R, results, distinct contributors, elapsed time, why nothing moves."""
    total = project.total_rounds or "?"
    elapsed = project.elapsed_seconds
    line = (
        f"[bold]{project.name}[/] {project.id}\n"
        f"state: [bold]{project.state}[/]  round {project.round} of {total}  "
        f"accepted tasks {project.accepted_tasks}/{project.total_task_results or '?'}  "
        f"contributors {project.contributors}  tasks in flight {project.tasks_in_flight}"
    )
    if elapsed is not None:
        paused = " (stopped while paused)" if project.state == "paused" else ""
        line += f"\nelapsed: {duration_text(elapsed)}{paused}"
    if project.waiting_hint:
        line += f"\n[yellow]{project.waiting_hint}[/]"
    if project.verification is not None and project.verification.summary:
        line += f"\nreplicated results: {project.verification.summary}"
    if project.error:
        line += f"\n[red]error: {escape(project.error)}[/]"
    elif project.last_failure:
        line += f"\n[yellow]{escape(failure_text(project.last_failure))}[/]"
    return line


def estimate_text(estimate: EstimateOut) -> str:
    """ "estimated cost: ... credits" and "estimated time: ..." on two lines."""
    cost = estimate.cost
    if cost.estimate is None:
        credits = "unknown until the model and data are uploaded"
    else:
        credits = f"{credits_text(cost.estimate)} credits"
        if cost.replicas:
            credits += f" (of which {credits_text(cost.replicas)} for verification replicas)"
    return f"estimated cost: {credits}\nestimated time: {estimate.time.summary}"


def rounds_table(rounds: list[RoundOut]) -> Table:
    table = Table("round", "accepted", "rejected", "loss", "acc", "val loss", "val acc", "closed")
    for r in rounds:
        metrics = r.metrics or {}
        evaluation = r.evaluation or {}
        table.add_row(
            str(r.number),
            str(r.accepted),
            str(r.rejected),
            _fmt(metrics.get("loss")),
            _fmt(metrics.get("accuracy")),
            _fmt(evaluation.get("loss")) if "error" not in evaluation else "error",
            _fmt(evaluation.get("accuracy") or evaluation.get("compile_metrics")),
            r.closed_at.isoformat()[:19] if r.closed_at else "open",
        )
    return table


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"
