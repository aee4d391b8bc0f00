"""The credit history as a Qt table model (testable without a window).

Requestor mode lists every entry of the account (grants, projects' charges, earnings) with
the balance after it; provider mode lists what each accepted task earned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PyQt5.QtCore import QModelIndex, QObject, Qt

from daig.contract.http import HistoryLineOut
from daig.credits.units import credits_text
from requestor_gui.table_model import RowsTableModel

KIND_TEXT = {"grant": "sign-up grant", "work": "training"}


def when_text(at: datetime) -> str:
    """``2026-11-30T03:01:02.123+00:00`` as ``2026-11-30 03:01:02`` (the server's clock, UTC)."""
    return at.strftime("%Y-%m-%d %H:%M:%S")


class CreditHistoryModel(RowsTableModel):
    """Entries of the account, newest first; ``earnings_only`` keeps one row per paid task."""

    def __init__(self, *, earnings_only: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.earnings_only = earnings_only
        self.columns = (
            ("When (UTC)", "Project", "Task", "Credits earned")
            if earnings_only
            else ("When (UTC)", "What", "Project", "Amount", "Balance after")
        )

    def set_history(self, lines: list[HistoryLineOut]) -> None:
        if self.earnings_only:
            lines = [line for line in lines if line.kind == "work" and line.amount > 0]
        self.replace_rows(lines)

    def line(self, row: int) -> HistoryLineOut:
        line: HistoryLineOut = self._rows[row]
        return line

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        line = self.row_at(index)
        if line is None:
            return None
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

    def _text(self, line: HistoryLineOut, column: int) -> str:
        project = str(line.project_id or "")[:8] or "—"
        values: tuple[str, ...]
        if self.earnings_only:
            values = (
                when_text(line.at),
                project,
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
