"""The credit history as a Qt table model (testable without a window).

Requestor mode lists every entry of the account (grants, projects' charges, earnings) with
the balance after it; provider mode lists what each accepted task earned, grouped by project:
a bold row per project (its name, tasks paid, credits in all), then its tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PyQt5.QtCore import QModelIndex, QObject, Qt
from PyQt5.QtGui import QFont

from daig.contract.http import HistoryLineOut
from daig.credits.units import credits_text
from requestor_gui.table_model import RowsTableModel

KIND_TEXT = {"grant": "sign-up grant", "work": "training"}


def when_text(at: datetime) -> str:
    """``2026-11-30T03:01:02.123+00:00`` as ``2026-11-30 03:01:02`` (the server's clock, UTC)."""
    return at.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class ProjectGroup:
    """The heading row of one project's earnings."""

    name: str
    tasks: int
    credits: float


def project_name(line: HistoryLineOut) -> str:
    if line.project_name:
        return line.project_name
    return f"project {str(line.project_id)[:8]}" if line.project_id else "—"


def grouped_earnings(lines: list[HistoryLineOut]) -> list[ProjectGroup | HistoryLineOut]:
    """Paid tasks under their project's heading; projects by their latest payment first."""
    groups: dict[str, list[HistoryLineOut]] = {}
    for line in lines:  # newest first: so are the groups and their tasks
        if line.kind == "work" and line.amount > 0:
            groups.setdefault(project_name(line), []).append(line)
    rows: list[ProjectGroup | HistoryLineOut] = []
    for name, paid in groups.items():
        rows.append(ProjectGroup(name, len(paid), sum((line.amount for line in paid), 0.0)))
        rows.extend(paid)
    return rows


class CreditHistoryModel(RowsTableModel):
    """Entries of the account, newest first; ``earnings_only`` keeps one row per paid task."""

    def __init__(self, *, earnings_only: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.earnings_only = earnings_only
        self.columns = (
            ("Project", "When (UTC)", "Task", "Credits earned")
            if earnings_only
            else ("When (UTC)", "What", "Project", "Amount", "Balance after")
        )

    def set_history(self, lines: list[HistoryLineOut]) -> None:
        self.replace_rows(grouped_earnings(lines) if self.earnings_only else lines)

    def line(self, row: int) -> HistoryLineOut | ProjectGroup:
        line: HistoryLineOut | ProjectGroup = self._rows[row]
        return line

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        line = self.row_at(index)
        if line is None:
            return None
        if isinstance(line, ProjectGroup):
            return self._group_data(line, index.column(), role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(line, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return line.memo or None
        numeric = 1 if self.earnings_only else 2  # the last columns hold amounts
        if (
            role == Qt.ItemDataRole.TextAlignmentRole
            and index.column() >= len(self.columns) - numeric
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _group_data(group: ProjectGroup, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            tasks = f"{group.tasks} task{'s' * (group.tasks != 1)}"
            return (group.name, "", tasks, credits_text(group.credits))[column]
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, line: HistoryLineOut, column: int) -> str:
        project = project_name(line)
        values: tuple[str, ...]
        if self.earnings_only:
            values = (
                "",  # under its project's heading row
                when_text(line.at),
                str(line.task_id or "")[:8],
                credits_text(line.amount),
            )
        else:
            kind = KIND_TEXT.get(line.kind, line.kind)
            if line.kind == "work":
                kind = "earned for a task" if line.amount > 0 else "paid for a task"
            values = (
                when_text(line.at),
                kind,
                project,
                credits_text(line.amount, signed=True),
                credits_text(line.balance_after),
            )
        return values[column]
