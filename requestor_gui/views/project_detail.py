"""One project: live state and chart, per-round table, pause/resume/cancel, model download.

Opening another project clears every figure at once, before its data arrives, and answers
that arrive late for the project shown before are dropped. A refresh error stays on screen
only until the server answers again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QHideEvent, QShowEvent
from PyQt5.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QProgressBar,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from daig.client import DownloadedModel
from daig.contract.http import EstimateOut, ProjectOut, RoundOut
from daig.credits.units import credits_text
from daig.failures import failure_text
from requestor_gui import operations
from requestor_gui.account import Account
from requestor_gui.models import RoundTableModel, rounds_text, state_label
from requestor_gui.timing import elapsed_seconds, eta_seconds, format_duration
from requestor_gui.views.chart import MetricsChart
from requestor_gui.views.common import (
    Message,
    Stat,
    StatePill,
    button,
    confirm,
    label,
    read_only_table,
)
from requestor_gui.workers import Runner, Worker

REFRESH_MS = 2000
ACTIONS = {  # action: (button text, states it applies to)
    "start": ("Start training", {"created"}),
    "pause": ("Pause", {"queued", "running"}),
    "resume": ("Resume", {"paused"}),
    "cancel": ("Cancel training", {"created", "queued", "running", "paused"}),
}
DONE_WORDS = {"start": "started", "pause": "paused", "resume": "resumed", "cancel": "cancelled"}


class ProjectDetailView(QWidget):
    """Emits ``back`` for the projects button; ``refreshed`` after each update."""

    back = pyqtSignal()
    refreshed = pyqtSignal()
    downloaded = pyqtSignal(str)  # the saved path
    deleted = pyqtSignal(str)  # the project's name, once the server deleted it

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._account: Account | None = None
        self.project_id: str | None = None
        self.project: ProjectOut | None = None  # None until the first answer
        self.rounds: list[RoundOut] = []
        self._loading: str | None = None  # the project whose refresh is in flight
        self._refresh_error = False  # the message shows a failed refresh (cleared on success)
        # Bumped by every pause/resume/cancel: a refresh fetched before it is stale.
        self._changes = 0
        self._stale = False
        self._download: Worker | None = None
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    # --- building ---------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 14, 24, 14)
        layout.addLayout(self._top())
        self.message = Message()
        layout.addWidget(self.message)
        self.failure = Message()  # a provider's latest training failure (plain text), while retried
        layout.addWidget(self.failure)
        layout.addLayout(self._stats())
        self.waiting = label("", "hint")  # "waiting for volunteers: N online now"
        self.waiting.hide()
        layout.addWidget(self.waiting)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p% of the results needed")
        layout.addWidget(self.progress)
        self.download_bar = QProgressBar()
        self.download_bar.setRange(0, 1000)
        self.download_bar.setFormat("downloading the model… %p%")
        self.download_bar.hide()
        layout.addWidget(self.download_bar)
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.chart = MetricsChart()
        splitter.addWidget(self.chart)
        self.round_model = RoundTableModel(self)
        self.round_table = QTableView()
        self.round_table.setModel(self.round_model)
        read_only_table(self.round_table)
        splitter.addWidget(self.round_table)
        splitter.setSizes([340, 200])
        layout.addWidget(splitter, 1)

    def _top(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.back_button = button("←  Projects")
        self.back_button.clicked.connect(self.back)
        row.addWidget(self.back_button)
        row.addSpacing(12)
        self.title = label("", "title")
        row.addWidget(self.title)
        self.pill = StatePill()
        row.addWidget(self.pill)
        row.addStretch(1)
        # Before Start: what it will cost and how long it would take with who is online now
        self.estimate_label = label("", "hint")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.hide()
        row.addWidget(self.estimate_label, 1)
        self.action_buttons = {}
        for action, (text, _) in ACTIONS.items():
            widget = button(text, "danger" if action == "cancel" else None)
            widget.clicked.connect(lambda _=False, a=action: self.change(a))
            self.action_buttons[action] = widget
            row.addWidget(widget)
        self.download_button = button("Download model…", "primary")
        self.download_button.setToolTip("The current model: final once training is done")
        self.download_button.clicked.connect(self._download_clicked)
        row.addWidget(self.download_button)
        self.delete_button = button("Delete…", "danger")
        self.delete_button.setToolTip("Delete the project with its files and models")
        self.delete_button.clicked.connect(self.delete_project)
        row.addWidget(self.delete_button)
        return row

    def _stats(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.stats = {
            name: Stat(name)
            for name in (
                "round",
                "contributors",
                "elapsed",
                "ETA",
                "loss",
                "accuracy",
                "held-out accuracy",
                "verified",
            )
        }
        self.stats["held-out accuracy"].setToolTip(
            "The latest model scored on your validation files (rows no volunteer trained on)."
        )
        self.stats["contributors"].setToolTip(
            "Volunteers (accounts) whose results were accepted; the tooltip of the state "
            "says how many tasks are training now."
        )
        self.stats["verified"].setToolTip(
            "Replicated tasks: two volunteers trained the same shard and their results were "
            "compared before counting (agreed / disagreed); accounts outvoted are quarantined."
        )
        for stat in self.stats.values():
            row.addWidget(stat)
        return row

    # --- data -------------------------------------------------------------------------------
    def set_account(self, account: Account | None) -> None:
        self._account = account

    def open(self, project_id: str, note: str = "") -> None:
        """Show ``project_id`` (``note``: a message to show, e.g. upload warnings)."""
        if project_id != self.project_id:
            self._clear()
        self.project_id = project_id
        self._refresh_error = False
        if note:
            self.message.show_info(note)
        else:
            self.message.clear()
        self.refresh()

    def _clear(self) -> None:
        """Blank every figure, table and chart (another project is being opened)."""
        self.project, self.rounds = None, []
        self._stale = False
        self.title.setText("Loading…")
        self.pill.set_state("", "")
        self.progress.setValue(0)
        for stat in self.stats.values():
            stat.set("—")
        self.stats["held-out accuracy"].setVisible(False)
        for widget in self.action_buttons.values():
            widget.setVisible(False)
        self.round_model.set_rounds([])
        self.chart.set_rounds([])

    def refresh(self) -> None:
        project_id = self.project_id
        if self._account is None or project_id is None or self._loading == project_id:
            return
        # A refresh of the project shown before may still be in flight: its answer is dropped.
        self._loading = project_id
        changes = self._changes
        self._runner.start(
            operations.project_detail,
            self._account,
            project_id,
            on_returned=lambda detail: self._loaded(project_id, changes, detail),
            on_errored=lambda message: self._refresh_failed(project_id, message),
            on_finished=lambda: self._refresh_done(project_id),
        )

    def _loaded(self, project_id: str, changes: int, detail: operations.Detail) -> None:
        if project_id != self.project_id:
            return
        if changes != self._changes:
            self._stale = True
            return
        if self._refresh_error:  # the server answers again
            self._refresh_error = False
            self.message.clear()
        self.show_project(detail.project, detail.rounds)
        self.show_estimate(detail.estimate)
        self.refreshed.emit()

    def _refresh_failed(self, project_id: str, message: str) -> None:
        if project_id != self.project_id:
            return
        self._refresh_error = True
        self.message.show_error(f"Could not refresh: {message}")

    def _refresh_done(self, project_id: str) -> None:
        if self._loading != project_id:
            return  # another project's refresh is in flight now
        self._loading = None
        if self._stale:  # the result was dropped: fetch again now, not at the next tick
            self._stale = False
            self.refresh()

    @property
    def state(self) -> str | None:
        """The shown project's state; None while none is shown."""
        return self.project.state if self.project else None

    def show_project(self, project: ProjectOut, rounds: list[RoundOut]) -> None:
        self.project, self.rounds = project, rounds
        state = project.state
        self.title.setText(project.name)
        self.pill.set_state(state, state_label(state))
        self.progress.setValue(int(1000 * project.progress))
        metrics = project.latest_metrics or {}
        values = {
            "round": rounds_text(project),
            "contributors": str(project.contributors),
            "elapsed": format_duration(elapsed_seconds(project)),
            "ETA": format_duration(eta_seconds(project, rounds)),
            "loss": _metric(metrics.get("loss")),
            "accuracy": _metric(metrics.get("accuracy")),
        }
        evaluation = project.latest_evaluation or {}
        held_out = evaluation.get("accuracy")
        if "error" in evaluation or not isinstance(held_out, int | float):
            held_out = None
        values["held-out accuracy"] = _metric(held_out)
        self.stats["held-out accuracy"].setVisible(held_out is not None)
        values["verified"] = verification_text(project)
        for name, value in values.items():
            self.stats[name].set(value)
        self.pill.setToolTip(f"{project.tasks_in_flight} task(s) training now")
        self.waiting.setText(project.waiting_hint.capitalize())
        self.waiting.setVisible(bool(project.waiting_hint))
        if state != "created":
            self.estimate_label.hide()
        for action, (_, states) in ACTIONS.items():
            self.action_buttons[action].setVisible(state in states)
        if project.error and not self.message.is_error:
            self.message.show_error(f"The project {state}: {project.error}")
        if project.last_failure and not project.error:
            self.failure.show_info(f"A task failed: {failure_text(project.last_failure)}")
        else:
            self.failure.clear()
        self.round_model.set_rounds(rounds)
        self.chart.set_rounds(rounds, project.total_rounds)

    def show_estimate(self, estimate: EstimateOut | None) -> None:
        """The cost and time estimate beside the Start button (hidden once started)."""
        if estimate is None or self.state != "created":
            self.estimate_label.hide()
            return
        self.estimate_label.setText(estimate_text(estimate))
        self.estimate_label.show()

    # --- actions ----------------------------------------------------------------------------
    def change(self, action: str) -> None:
        if self._account is None or self.project_id is None:
            return
        if action == "cancel" and not self.confirm(
            "Cancel training for good?",
            "Every volunteer stops and the project cannot be resumed. The current model "
            "stays downloadable.",
        ):
            return
        for widget in self.action_buttons.values():
            widget.setEnabled(False)
        self._changes += 1
        self._runner.start(
            operations.change_state,
            self._account,
            self.project_id,
            action,
            on_returned=lambda project: self._changed(action, project),
            on_errored=self._action_failed,
            on_finished=self._enable_actions,
        )

    def _action_failed(self, message: str) -> None:
        self._refresh_error = False  # an answer to what the person did: a refresh keeps it
        self.message.show_error(message)

    def _changed(self, action: str, project: ProjectOut) -> None:
        self._changes += 1
        self.message.show_info(f"Training {DONE_WORDS[action]}.")
        self.show_project(project, self.rounds)
        self.refresh()

    def _enable_actions(self) -> None:
        for widget in self.action_buttons.values():
            widget.setEnabled(True)

    def toggle_training(self) -> None:
        """Start, pause or resume, whichever applies now (the Ctrl+T shortcut)."""
        state = self.state
        for action in ("start", "pause", "resume"):
            if state in ACTIONS[action][1] and self.action_buttons[action].isEnabled():
                self.change(action)
                return

    def delete_project(self) -> None:
        """Delete the shown project after OK; one still training is cancelled first."""
        if self._account is None or self.project_id is None or self.project is None:
            return
        name, training = self.project.name, self.project.state in operations.TRAINING
        detail = "Its files, results and models are deleted from the server. This cannot be undone."
        if training:
            detail = "It is still training: its training is cancelled first. " + detail
        if not self.confirm(f"Delete the project {name}?", detail):
            return
        self.delete_button.setEnabled(False)
        self._changes += 1
        self._runner.start(
            operations.delete_project,
            self._account,
            self.project_id,
            cancel_first=training,
            on_returned=lambda _: self._deleted(name),
            on_errored=lambda message: self.message.show_error(f"Could not delete: {message}"),
            on_finished=lambda: self.delete_button.setEnabled(True),
        )

    def _deleted(self, name: str) -> None:
        self.project_id, self.project, self.rounds = None, None, []
        self.deleted.emit(name)

    def confirm(self, question: str, detail: str) -> bool:
        return confirm(self, question, detail)

    def ask_save_path(self) -> Path | None:
        name = ((self.project.name if self.project else "") or "model").replace("/", "_")
        chosen, _ = QFileDialog.getSaveFileName(
            self, "Save the model", f"{name}.h5", "Keras model (*.h5)"
        )
        return Path(chosen) if chosen else None

    def _download_clicked(self) -> None:
        if self._download is not None:
            self._download.cancel()
            return
        if self._account is None or self.project_id is None:
            return
        target = self.ask_save_path()
        if target is None:
            return
        self.download_bar.setValue(0)
        self.download_bar.show()
        self.download_button.setText("Cancel download")
        self._download = self._runner.start(
            operations.download_model,
            self._account,
            self.project_id,
            target,
            on_progress=self._download_progress,
            on_returned=lambda info: self._downloaded(target, info),
            on_errored=lambda message: self.message.show_error(f"Download failed: {message}"),
            on_finished=self._download_finished,
        )

    def _download_progress(self, transfer: operations.Transfer) -> None:
        if transfer.total:
            self.download_bar.setValue(int(1000 * transfer.done / transfer.total))
        else:
            self.download_bar.setRange(0, 0)  # busy indicator while the size is unknown

    def _downloaded(self, target: Path, info: DownloadedModel) -> None:
        version = info.weights_version
        which = (
            f"weights after {version} round{'s' * (version != '1')}"
            if version and version != "0"
            else "the model as uploaded"
        )
        self.message.show_info(f"Saved {target} ({which}).")
        self.downloaded.emit(str(target))

    def _download_finished(self) -> None:
        cancelled = self._download is not None and self._download.cancelled
        self._download = None
        self.download_bar.setRange(0, 1000)
        self.download_bar.hide()
        self.download_button.setText("Download model…")
        if cancelled:
            self.message.show_info("Download cancelled.")

    def showEvent(self, event: QShowEvent | None) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.timer.start()

    def hideEvent(self, event: QHideEvent | None) -> None:  # noqa: N802 - Qt API
        super().hideEvent(event)
        self.timer.stop()


def estimate_text(estimate: EstimateOut) -> str:
    """ "Estimated cost: 1,234 credits. Time: about 3 min ... online now (...)"."""
    credits = estimate.cost.estimate
    cost = (
        "unknown until the files are uploaded"
        if credits is None
        else f"{credits_text(credits)} credits"
    )
    return f"Estimated cost: {cost}. Time: {estimate.time.summary}."


def verification_text(project: ProjectOut) -> str:
    """Replicated results: agreed and disagreed, and who was quarantined here."""
    check = project.verification
    return (check.summary if check is not None else "") or "—"


def _metric(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"
