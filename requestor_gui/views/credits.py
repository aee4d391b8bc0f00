"""A credits panel for both modes: balance, what it is made of, and the history.

In provider mode the history lists each accepted task and the credit it earned; in
requestor mode, every entry with the balance after it. It refreshes every few seconds while
it is on screen (network calls run in workers, never on the UI thread).
"""

from __future__ import annotations

from functools import partial

from PyQt5.QtCore import QTimer, pyqtSignal
from PyQt5.QtWidgets import QGroupBox, QHBoxLayout, QTableView, QVBoxLayout, QWidget

from daig.client import DaigClient
from daig.contract.http import BalanceOut, HistoryLineOut, StandingOut
from daig.credits.units import UNIT_TEXT, credits_text
from requestor_gui.account import Account
from requestor_gui.credit_models import CreditHistoryModel
from requestor_gui.views.common import Message, Stat, button, label, read_only_table
from requestor_gui.workers import Runner

REFRESH_MS = 5_000
HISTORY_LINES = 200


Fetched = tuple[BalanceOut, list[HistoryLineOut], StandingOut | None]


def fetch_credits(client: DaigClient, *, standing: bool = False) -> Fetched:
    """Balance and history; with ``standing``, the volunteer's verified record too."""
    return (
        client.credits(),
        client.credit_history(HISTORY_LINES),
        client.standing() if standing else None,
    )


class CreditsPanel(QGroupBox):
    """Emits ``refreshed`` after each successful refresh (tests wait on it)."""

    refreshed = pyqtSignal()

    def __init__(self, runner: Runner, *, provider: bool, parent: QWidget | None = None) -> None:
        super().__init__(f"Credits ({UNIT_TEXT})", parent)
        self._runner = runner
        self._account: Account | None = None
        self._loading = False
        self.provider = provider
        layout = QVBoxLayout(self)
        stats = QHBoxLayout()
        self.balance = Stat("balance")
        self.earned = Stat("earned by volunteering")
        self.spent = Stat("spent by your projects")
        self.available = Stat("available for new projects")
        for stat in (self.balance, self.earned, self.spent, self.available):
            stats.addWidget(stat)
        self.refresh_button = button("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        stats.addWidget(self.refresh_button)
        layout.addLayout(stats)
        self.message = Message()
        layout.addWidget(self.message)
        # A volunteer's standing: checked results, trust, and a quarantine if one was outvoted.
        self.standing = label("", "hint", wrap=True)
        self.standing.setVisible(provider)
        layout.addWidget(self.standing)
        layout.addWidget(
            label(
                "Credit earned by each task this account trained, by project (accepted only):"
                if provider
                else "Your account's history, newest first:",
                "hint",
            )
        )
        self.model = CreditHistoryModel(earnings_only=provider, parent=self)
        self.table = read_only_table(QTableView())
        self.table.setModel(self.model)
        self.table.setMinimumHeight(90)
        layout.addWidget(self.table, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._refresh_if_shown)

    def set_account(self, account: Account | None) -> None:
        self._account = account
        if account is None:
            self.timer.stop()
            self.model.set_history([])
            for stat in (self.balance, self.earned, self.spent, self.available):
                stat.set("—")
            return
        self.timer.start()
        self.refresh()

    def _refresh_if_shown(self) -> None:
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        account = self._account
        if account is None or self._loading:
            return
        self._loading = True
        self._runner.start(
            account.call,
            partial(fetch_credits, standing=self.provider),
            on_returned=self._show,
            on_errored=self.message.show_error,
            on_finished=self._done,
        )

    def _done(self) -> None:
        self._loading = False

    def _show(self, result: Fetched) -> None:
        totals, history, standing = result
        self.message.clear()
        if standing is not None:
            self._show_standing(standing)
        self.balance.set(credits_text(totals.balance))
        self.earned.set(credits_text(totals.earned))
        self.spent.set(credits_text(totals.spent))
        self.available.set(credits_text(totals.available))
        self.model.set_history(history)
        self.refreshed.emit()

    def _show_standing(self, standing: StandingOut) -> None:
        waiting = standing.results_waiting
        text = f"Standing: {standing.summary}" + (
            f" ({waiting} result(s) waiting for their replicas)" if waiting else ""
        )
        if standing.quarantined:
            self.message.show_error(
                f"Your account is quarantined: {standing.reason}. DAIG gives it no more tasks; "
                "ask the server's operator to review it."
            )
        self.standing.setText(text)
