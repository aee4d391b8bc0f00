"""A volunteer's recent tasks and what became of them, as Qt models (testable without a window).

Two sources meet here: the agent's own records (``AgentStatus.recent``: the phase of the task
under way, given back, failed, sent) and the server's verdicts (``GET /v1/provider/results``:
accepted, rejected and why, credits). A task the server has judged shows the verdict; one it
has not shows what the agent knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QModelIndex, Qt

from daig.contract.http import ProviderResultOut
from provider_agent.status import TaskRecord
from requestor_gui.credit_models import credits_text, when_text
from requestor_gui.table_model import RowsTableModel
from requestor_gui.timing import format_duration

VERDICTS = {
    "accepted": "accepted",
    "agreed": "accepted (verified)",
    "held": "sent; waiting for its replica",
    "rejected": "rejected",
    "disagreed": "rejected (outvoted by its replicas)",
    "failed": "failed",
}
BAD = {"rejected", "disagreed", "failed"}


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    project: str
    round: int  # numbered from 1 for people
    shard: int | None
    outcome: str
    seconds: float | None
    credits: float | None


def verdict_text(result: ProviderResultOut) -> str:
    text = VERDICTS.get(result.status, result.status)
    if result.status in BAD and (result.detail or result.reason):
        text += f": {result.detail or result.reason}"
    return text


def task_rows(
    records: Sequence[TaskRecord], results: Sequence[ProviderResultOut], phase: str | None
) -> list[TaskRow]:
    """The agent's tasks (newest first) with the server's verdicts; then tasks only the
    server knows (from an earlier session)."""
    by_task = {str(r.task_id): r for r in reversed(results)}  # the newest result per task
    rows: list[TaskRow] = []
    for record in records:
        result = by_task.pop(record.task_id, None)
        if result is not None:
            outcome = verdict_text(result)
        elif record.outcome == "sent":
            outcome = "sent; waiting for the server's verdict"
        elif record.outcome:
            outcome = record.outcome
        else:
            outcome = phase or "starting"
        rows.append(
            TaskRow(
                record.task_id,
                record.project_name,
                record.round + 1,
                record.shard,
                outcome,
                record.seconds if record.outcome else None,
                result.credits if result is not None else None,
            )
        )
    for result in results:
        if str(result.task_id) in by_task:
            rows.append(
                TaskRow(
                    str(result.task_id),
                    result.project_name or str(result.project_id)[:8],
                    result.round + 1,
                    result.shard,
                    verdict_text(result),
                    result.fit_seconds,
                    result.credits,
                )
            )
            by_task.pop(str(result.task_id))
    return rows


def event_lines(results: Iterable[ProviderResultOut]) -> list[str]:
    """The event log, newest first: one line per verdict."""
    lines = []
    for result in results:
        where = f"{result.project_name or 'a deleted project'}, round {result.round + 1}" + (
            f", shard {result.shard}" if result.shard is not None else ""
        )
        earned = f" (+{credits_text(result.credits)} credits)" if result.credits > 0 else ""
        lines.append(f"{when_text(result.received_at)}  {verdict_text(result)} — {where}{earned}")
    return lines


OUTCOME = "Phase / outcome"


class TaskListModel(RowsTableModel):
    columns = ("Project", "Round", "Shard", OUTCOME, "Duration", "Credits")

    def set_tasks(self, rows: list[TaskRow]) -> None:
        if rows != self._rows:
            self.replace_rows(rows)

    def task(self, row: int) -> TaskRow:
        task: TaskRow = self._rows[row]
        return task

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        task = self.row_at(index)
        if task is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(task, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:  # the whole outcome, however narrow the column
            return f"task {task.task_id}: {task.outcome}"
        return None

    @staticmethod
    def _text(task: TaskRow, column: int) -> str:
        values = (
            task.project,
            str(task.round),
            "—" if task.shard is None else str(task.shard),
            task.outcome,
            "—" if task.seconds is None else format_duration(task.seconds),
            "—" if task.credits is None else credits_text(task.credits),
        )
        return values[column]
