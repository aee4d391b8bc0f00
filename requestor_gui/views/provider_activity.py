"""The volunteer's recent tasks, the event log of the server's verdicts, and notices.

Results go to the servers over the broker, so the agent never hears whether one was accepted:
this panel asks the API (``GET /v1/provider/results`` and the account's standing) every few
seconds, off the UI thread, and merges the verdicts with the agent's own records of its tasks.
A rejected result or a quarantined account raises a notice that stays until dismissed.
"""

from __future__ import annotations

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from daig.client import DaigClient
from daig.contract.http import ProviderResultOut, StandingOut
from provider_agent.status import AgentStatus, TaskRecord
from requestor_gui.account import Account
from requestor_gui.activity_models import (
    BAD,
    OUTCOME,
    TaskListModel,
    event_lines,
    task_rows,
    verdict_text,
)
from requestor_gui.views.common import Message, button, label, read_only_table
from requestor_gui.workers import Runner

REFRESH_MS = 5_000
RESULTS = 50
VISIBLE_ROWS = 5  # of the task list, before it scrolls

Fetched = tuple[Account, list[ProviderResultOut], StandingOut]


def fetch_activity(account: Account) -> Fetched:
    """The account's recent results and standing (blocking: run it in a worker)."""

    def both(client: DaigClient) -> tuple[list[ProviderResultOut], StandingOut]:
        return client.provider_results(limit=RESULTS), client.standing()

    return (account, *account.call(both))


class ActivityPanel(QGroupBox):
    """Emits ``refreshed`` after each answer, ``reachable(bool)`` when the API stops or starts
    answering these calls."""

    refreshed = pyqtSignal()
    reachable = pyqtSignal(bool)

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__("Recent tasks and what the server made of them", parent)
        self._runner = runner
        self._account: Account | None = None
        self._loading = False
        self._results: list[ProviderResultOut] = []
        self._records: tuple[TaskRecord, ...] = ()
        self._phase: str | None = None
        self._noticed: set[str] = set()  # results already raised as a notice
        self.server_error: str | None = None
        self.event_log: list[str] = []  # the lines the event log shows
        layout = QVBoxLayout(self)
        notice_row = QHBoxLayout()
        self.notice = Message()
        notice_row.addWidget(self.notice, 1)
        self.dismiss_button = button("Dismiss")
        self.dismiss_button.clicked.connect(self._dismiss)
        self.dismiss_button.hide()
        notice_row.addWidget(self.dismiss_button)
        layout.addLayout(notice_row)
        row = QHBoxLayout()
        self.model = TaskListModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        read_only_table(self.table, stretch=self.model.columns.index(OUTCOME))
        self.table.setMinimumHeight(VISIBLE_ROWS * 28 + 32)
        row.addWidget(self.table, 3)
        events = QVBoxLayout()
        events.addWidget(label("Event log (newest first):", "hint"))
        self.events = QListWidget()
        self.events.setWordWrap(True)  # a long rejection reason wraps instead of scrolling
        self.events.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        events.addWidget(self.events, 1)
        row.addLayout(events, 2)
        layout.addLayout(row, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._refresh_if_shown)

    def set_account(self, account: Account | None) -> None:
        self._account = account
        self._results, self._records, self._noticed = [], (), set()
        self._dismiss()
        self._show()
        if account is None:
            self.timer.stop()
            return
        self.timer.start()
        self.refresh()

    def show_status(self, status: AgentStatus) -> None:
        """The agent's own view of its tasks (called by the provider view's timer)."""
        records, phase = status.recent, status.phase
        if (records, phase) != (self._records, self._phase):
            self._records, self._phase = records, phase
            self._show()

    def _refresh_if_shown(self) -> None:
        """Every few seconds while the window is open (on any screen: notices must not wait)."""
        window = self.window()
        if window is not None and window.isVisible():
            self.refresh()

    def refresh(self) -> None:
        account = self._account
        if account is None or self._loading:
            return
        self._loading = True
        self._runner.start(
            fetch_activity,
            account,
            on_returned=self._fetched,  # bound methods: disconnected if the panel is deleted
            on_errored=self._failed,
            on_finished=self._done,
        )

    def _done(self) -> None:
        self._loading = False

    def _failed(self, message: str) -> None:
        was_reachable, self.server_error = self.server_error is None, message
        if was_reachable:
            self.reachable.emit(False)

    def _fetched(self, fetched: Fetched) -> None:
        account, results, standing = fetched
        if account is not self._account:
            return  # logged out or in as someone else meanwhile
        if self.server_error is not None:
            self.server_error = None
            self.reachable.emit(True)
        self._results = results
        self._notice(results, standing)
        self._show()
        self.refreshed.emit()

    def _notice(self, results: list[ProviderResultOut], standing: StandingOut) -> None:
        if standing.quarantined:
            self._raise(
                f"Your account is limited (quarantined): {standing.reason or standing.summary}. "
                "DAIG gives it no more tasks; ask the server's operator to review it."
            )
            return
        fresh = [r for r in results if r.status in BAD and str(r.message_id) not in self._noticed]
        if fresh:
            newest = fresh[0]
            self._noticed.update(str(r.message_id) for r in fresh)
            more = f" ({len(fresh) - 1} more in the event log)" if len(fresh) > 1 else ""
            self._raise(
                f"A result was not counted: {newest.project_name or 'a project'}, round "
                f"{newest.round + 1}: {verdict_text(newest)}{more}"
            )

    def _raise(self, text: str) -> None:
        self.notice.show_error(text)
        self.dismiss_button.show()

    def _dismiss(self) -> None:
        self.notice.clear()
        self.dismiss_button.hide()

    def _show(self) -> None:
        self.model.set_tasks(task_rows(self._records, self._results, self._phase))
        lines = event_lines(self._results)
        if lines != self.event_log:
            self.event_log = lines
            self.events.clear()
            self.events.addItems(lines)
