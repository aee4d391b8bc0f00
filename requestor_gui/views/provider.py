"""Provider mode: Participate / Stop, the running task (its project by name, its phase and
progress), the recent tasks and the server's verdicts, the volunteer's limits.

While the server or the broker does not answer, the state line says so and counts down to
the next try, and ``reachable(bool)`` tells the main window's top-bar light.

A background agent (a ``daig provider`` process the window handed over to, or one started at
login) is shown too, from its status file; Stop then asks it to stop. The "In the background"
box holds the two choices: keep volunteering when the window is closed, start at login.
"""

from __future__ import annotations

import os

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from provider_agent import status_file
from provider_agent.config import AgentConfig
from provider_agent.status import STARTING_TENSORFLOW, WAITING, AgentStatus
from requestor_gui import background, desktop_entry
from requestor_gui.account import Account
from requestor_gui.agent_thread import AgentThread
from requestor_gui.settings import GuiSettings
from requestor_gui.timing import format_duration
from requestor_gui.views.common import Message, Stat, button, label
from requestor_gui.views.politeness import PolitenessBox
from requestor_gui.views.provider_activity import ActivityPanel
from requestor_gui.workers import Runner

POLL_MS = 300
STATES = {
    "idle": "Not participating. Click Participate to lend this computer to DAIG.",
    "starting": "Connecting to the DAIG server…",
    STARTING_TENSORFLOW: "Participating: starting TensorFlow for the first task…",
    WAITING: "Participating: waiting for a task…",
    "training": "Training a task for a requestor…",
    "stopping": "Stopping: giving the current task back…",
    "stopped": "Stopped. Click Participate to volunteer again.",
}


class ProviderView(QWidget):
    """Emits ``running_changed(bool)`` when the agent starts or has fully stopped."""

    running_changed = pyqtSignal(bool)
    reachable = pyqtSignal(bool)  # False while the agent or the task list cannot reach it
    state_changed = pyqtSignal(bool, str)  # running (here or in the background), state text

    def __init__(
        self, settings: GuiSettings, runner: Runner | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self._runner = runner or Runner(self)
        self._agent_reachable = True
        self._account: Account | None = None
        self.agent_thread: AgentThread | None = None
        self.background: status_file.BackgroundAgent | None = None  # a separate agent process
        self._done_before = 0  # tasks and seconds of earlier runs in this session
        self._seconds_before = 0.0
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._poll)
        self.background_timer = QTimer(self)
        self.background_timer.setInterval(1000)
        self.background_timer.timeout.connect(self._poll_background)
        self.background_timer.start()
        self._show_state("idle")
        self._poll_background()

    # --- building ---------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 18)
        layout.addWidget(label("Resource provider", "title"))
        layout.addWidget(
            label(
                "DAIG sends this computer training tasks on small shards of other people's "
                "data. Training runs in a separate process with the limits below; Stop gives "
                "the current task back at once so another volunteer can finish it.",
                "subtitle",
                wrap=True,
            )
        )
        controls = QHBoxLayout()
        self.participate_button = button("Participate", "go")
        self.participate_button.clicked.connect(self.participate)
        self.stop_button = button("Stop", "stop")
        self.stop_button.clicked.connect(self.stop)
        controls.addWidget(self.participate_button)
        controls.addWidget(self.stop_button)
        controls.addSpacing(16)
        self.state = label("", "subtitle", wrap=True)
        controls.addWidget(self.state, 1)
        layout.addLayout(controls)
        self.message = Message()
        layout.addWidget(self.message)
        layout.addWidget(self._task_group())
        self.activity = ActivityPanel(self._runner)
        self.activity.reachable.connect(lambda _: self._tell_reachable())
        layout.addWidget(self.activity, 1)
        stats = QHBoxLayout()
        self.tasks_done = Stat("tasks done this session")
        self.contributed = Stat("training time contributed")
        stats.addWidget(self.tasks_done)
        stats.addWidget(self.contributed)
        layout.addLayout(stats)
        limits = QHBoxLayout()
        limits.addWidget(self._limits_group(), 1)
        self.politeness = PolitenessBox(self._settings)
        limits.addWidget(self.politeness, 1)
        layout.addLayout(limits)
        layout.addWidget(self._background_group())
        layout.addStretch(1)

    def _background_group(self) -> QGroupBox:
        group = QGroupBox("In the background")
        column = QVBoxLayout(group)
        self.keep_check = QCheckBox(
            "Keep volunteering when this window is closed (Quit from the tray icon stops it)"
        )
        self.keep_check.setChecked(self._settings.keep_volunteering)
        self.keep_check.toggled.connect(self._keep_toggled)
        column.addWidget(self.keep_check)
        self.autostart_check = QCheckBox(
            "Start volunteering when I log in to this computer (no password needed: "
            "a login that logging out revokes is kept, never the password)"
        )
        self.autostart_check.setChecked(desktop_entry.autostart_enabled())
        self.autostart_check.toggled.connect(self._autostart_toggled)
        column.addWidget(self.autostart_check)
        return group

    def _keep_toggled(self, keep: bool) -> None:
        self._settings.keep_volunteering = keep
        self._settings.save()

    def _autostart_toggled(self, enabled: bool) -> None:
        try:
            path = desktop_entry.set_autostart(enabled)
            if enabled:
                desktop_entry.install_app_entry()  # the launcher the volunteer reopens it from
        except OSError as exc:
            self.message.show_error(f"Could not change the autostart entry: {exc}")
            return
        if enabled:
            self.message.show_info(f"DAIG will volunteer at login ({path}).")
        else:
            self.message.show_info("DAIG will no longer start at login.")

    def _task_group(self) -> QGroupBox:
        group = QGroupBox("Current task")
        form = QFormLayout(group)
        self.project_label = label("—")
        self.task_label = label("—")
        self.round_label = label("—")
        self.phase_label = label("—")
        for widget in (self.project_label, self.task_label):
            widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Project", self.project_label)
        form.addRow("Task", self.task_label)
        form.addRow("Round", self.round_label)
        form.addRow("Phase", self.phase_label)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p% of the task's epochs")
        form.addRow("Progress", self.progress)
        return group

    def _limits_group(self) -> QGroupBox:
        group = QGroupBox("Your limits (remembered; applied when you click Participate)")
        form = QFormLayout(group)
        cpus = os.cpu_count() or 1
        self.threads_box = QSpinBox()
        self.threads_box.setRange(0, max(cpus, 1) * 4)
        self.threads_box.setSpecialValueText(f"all ({cpus})")
        self.threads_box.setValue(self._settings.threads)
        self.threads_box.valueChanged.connect(self._save_limits)
        self.threads_box.valueChanged.connect(
            lambda n: self.threads_box.setSuffix(" thread" if n == 1 else " threads")
        )
        self.threads_box.setSuffix(" thread" if self.threads_box.value() == 1 else " threads")
        self.threads_box.setMaximumWidth(220)
        form.addRow("CPU threads", self.threads_box)
        self.memory_box = QSpinBox()
        self.memory_box.setRange(0, 1024 * 1024)
        self.memory_box.setSingleStep(256)
        self.memory_box.setSpecialValueText("no limit")
        self.memory_box.setSuffix(" MB")
        self.memory_box.setValue(self._settings.memory_mb)
        self.memory_box.valueChanged.connect(self._save_limits)
        self.memory_box.setMaximumWidth(220)
        form.addRow("Memory for training", self.memory_box)
        form.addRow(
            "",
            label(
                "A task that needs more memory than this is stopped and given to someone "
                "else; it does not count against the requestor.",
                "hint",
                wrap=True,
            ),
        )
        return group

    def _save_limits(self) -> None:
        self._settings.threads = self.threads_box.value()
        self._settings.memory_mb = self.memory_box.value()
        self._settings.save()

    # --- running ----------------------------------------------------------------------------
    def set_account(self, account: Account | None) -> None:
        self._account = account
        self.activity.set_account(account)
        if self.agent_thread is None:
            self._show_state("idle")

    @property
    def running(self) -> bool:
        return self.agent_thread is not None

    def participate(self) -> None:
        if self._account is None or self.agent_thread is not None or self.background:
            return
        self._save_limits()
        config = AgentConfig(
            server=self._account.server,
            username=self._account.username,
            password=self._account.password,
            threads=self.threads_box.value() or None,
            memory_mb=self.memory_box.value() or None,
            **self.politeness.agent_options(),
        )
        self.message.clear()
        self.agent_thread = AgentThread(config, self)
        self.agent_thread.failed.connect(self._failed)
        self.agent_thread.finished.connect(self._finished)
        self.agent_thread.start()
        self.timer.start()
        self._poll()
        self.running_changed.emit(True)

    def stop(self) -> None:
        """Ask the agent to stop; it gives its task back and the thread ends by itself."""
        if self.agent_thread is None and self.background is not None:
            background.stop(self.background.pid)
            self._show_state("stopping")
            return
        if self.agent_thread is not None:
            self.agent_thread.request_stop()
            self._poll()

    def wait(self, msecs: int) -> bool:
        """Block until the agent's thread ended (True) or ``msecs`` passed."""
        return self.agent_thread is None or self.agent_thread.wait(msecs)

    def _failed(self, message: str) -> None:
        self.message.show_error(f"Could not participate: {message}")

    def _finished(self) -> None:
        thread, self.agent_thread = self.agent_thread, None
        self.timer.stop()
        if thread is not None:
            self._done_before += thread.status.tasks_done
            self._seconds_before += thread.status.seconds_contributed
            error = thread.status.last_error
            if error and not self.message.is_error:
                self.message.show_info(f"Last problem seen: {error}")
            thread.deleteLater()
        self._agent_reachable = True
        self._tell_reachable()
        self._show_state("stopped")
        self.running_changed.emit(False)

    def _poll(self) -> None:
        thread = self.agent_thread
        if thread is None:
            return
        status = thread.status
        self._show_state("stopping" if thread.stopping else status.state)
        if status.outage is not None and not thread.stopping:
            self.state.setText(f"Server unreachable: {status.outage.text()}…")
            self.state.setToolTip(status.outage.error)
        elif self.activity.server_error is not None and not thread.stopping:
            # An idle agent talks only to the broker: the task list's poll is what notices.
            retry = max(0, round(self.activity.timer.remainingTime() / 1000))
            self.state.setText(
                f"Server unreachable: the DAIG server does not answer; retrying in {retry} s…"
            )
            self.state.setToolTip(self.activity.server_error)
        else:
            self.state.setToolTip("")
        if self._agent_reachable != (status.outage is None):
            self._agent_reachable = status.outage is None
            self._tell_reachable()
        self._show_task(status)
        self.activity.show_status(status)
        self.politeness.show_status(status.limits, status.paused_because)
        self.tasks_done.set(str(self._done_before + status.tasks_done))
        self.contributed.set(format_duration(self._seconds_before + status.seconds_contributed))

    def _poll_background(self) -> None:
        """Show a background agent's state (none runs when this window's own agent does)."""
        if self.agent_thread is not None:
            return
        found = status_file.read()
        if found is None and self.background is not None:
            self.background = None
            self._show_state("stopped")
        elif found is not None:
            self.background = found
            status = found.status
            self._show_state(status.state)
            self._show_task(status)
            self.politeness.show_status(status.limits, status.paused_because)
            self.tasks_done.set(str(status.tasks_done))
            self.contributed.set(format_duration(status.seconds_contributed))

    def _show_task(self, status: AgentStatus) -> None:
        training = status.project_id is not None and (
            status.state == "training" or status.state.startswith("suspended")
        )
        owner = f" (by {status.owner_name})" if status.owner_name else ""
        project = f"{status.project_name or 'a project'}{owner}"
        self.project_label.setText(project if training else "—")
        self.project_label.setToolTip(f"project {status.project_id}" if training else "")
        self.task_label.setText(f"shard {status.shard}" if training else "—")
        self.round_label.setText(
            str(status.round + 1) if training and status.round is not None else "—"
        )
        self.phase_label.setText((status.phase or "claimed") if training else "—")
        self.progress.setValue(int(1000 * status.progress) if training else 0)

    @property
    def server_reachable(self) -> bool:
        """Whether the agent (while it runs) and the task list's calls reach the server."""
        return self._agent_reachable and self.activity.server_error is None

    def _tell_reachable(self) -> None:
        self.reachable.emit(self.server_reachable)

    def _show_state(self, state: str) -> None:
        text = STATES.get(state, state[:1].upper() + state[1:])
        if self.agent_thread is None and self.background is not None:
            text = f"In the background (process {self.background.pid}): {text}"
        self.state.setText(text)
        running = self.agent_thread is not None or self.background is not None
        self.state_changed.emit(running, text)
        self.participate_button.setEnabled(not running and self._account is not None)
        self.stop_button.setEnabled(
            running and not (self.agent_thread and self.agent_thread.stopping)
        )
        self.threads_box.setEnabled(not running)
        self.memory_box.setEnabled(not running)
        self.politeness.set_editable(not running)
        if not running:
            for widget in (self.project_label, self.task_label, self.round_label, self.phase_label):
                widget.setText("—")
            self.progress.setValue(0)
            self.tasks_done.set(str(self._done_before))
            self.contributed.set(format_duration(self._seconds_before))
