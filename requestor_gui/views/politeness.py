"""Provider mode's "when to volunteer" settings, and what the agent says about each.

Idle minutes, a daily window and battery use map onto ``AgentConfig`` (see
``provider_agent/politeness.py``); they are remembered in the GUI settings and applied when
Participate is clicked. While the agent runs, the box shows every limit as the agent sees it
(including "unknown" where this computer cannot tell) and why it is paused, if it is.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QTime
from PyQt5.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QSpinBox,
    QTimeEdit,
    QWidget,
)

from provider_agent.politeness import Hours
from requestor_gui.settings import GuiSettings
from requestor_gui.views.common import label

DEFAULT_HOURS = "22:00-07:00"


class PolitenessBox(QGroupBox):
    def __init__(self, settings: GuiSettings, parent: QWidget | None = None) -> None:
        super().__init__("When to volunteer (applied when you click Participate)", parent)
        self._settings = settings
        form = QFormLayout(self)
        self.idle_box = QSpinBox()
        self.idle_box.setRange(0, 24 * 60)
        self.idle_box.setSpecialValueText("whenever participating")
        self.idle_box.setSuffix(" min without keyboard or mouse")
        self.idle_box.setValue(settings.idle_minutes)
        self.idle_box.setMaximumWidth(320)
        form.addRow("Only when idle for", self.idle_box)
        hours = Hours.parse(settings.hours or DEFAULT_HOURS)
        self.hours_check = QCheckBox("only between")
        self.hours_check.setChecked(bool(settings.hours))
        self.start_edit, self.end_edit = QTimeEdit(), QTimeEdit()
        for edit, value in ((self.start_edit, hours.start), (self.end_edit, hours.end)):
            edit.setDisplayFormat("HH:mm")
            edit.setTime(QTime(value.hour, value.minute))
        row = QHBoxLayout()
        for widget in (self.hours_check, self.start_edit, label("and"), self.end_edit):
            row.addWidget(widget)
        row.addStretch(1)
        form.addRow("Hours", row)
        self.battery_check = QCheckBox("keep working on battery (by default work pauses)")
        self.battery_check.setChecked(settings.work_on_battery)
        form.addRow("Battery", self.battery_check)
        self.status = label("", "hint", wrap=True)
        form.addRow(self.status)  # the whole width: what the agent says now
        for signal in (
            self.idle_box.valueChanged,
            self.hours_check.toggled,
            self.start_edit.timeChanged,
            self.end_edit.timeChanged,
            self.battery_check.toggled,
        ):
            signal.connect(self.save)

    def hours_text(self) -> str | None:
        if not self.hours_check.isChecked():
            return None
        return (
            f"{self.start_edit.time().toString('HH:mm')}-{self.end_edit.time().toString('HH:mm')}"
        )

    def agent_options(self) -> dict[str, Any]:
        """The ``AgentConfig`` fields these settings set."""
        return {
            "idle_minutes": self.idle_box.value() or None,
            "hours": self.hours_text(),
            "pause_on_battery": not self.battery_check.isChecked(),
        }

    def save(self) -> None:
        self._settings.idle_minutes = self.idle_box.value()
        self._settings.hours = self.hours_text() or ""
        self._settings.work_on_battery = self.battery_check.isChecked()
        self._settings.save()

    def set_editable(self, editable: bool) -> None:
        for widget in (
            self.idle_box,
            self.hours_check,
            self.start_edit,
            self.end_edit,
            self.battery_check,
        ):
            widget.setEnabled(editable)
        if editable:
            self.status.setText("")

    def show_status(self, limits: dict[str, str], paused_because: str | None) -> None:
        """Why the agent waits (if it does) and what this computer says about idle and power.

        Threads, memory and hours are on screen already as set; every limit as the agent
        sees it is in the tooltip.
        """
        lines = [f"paused: {paused_because}" if paused_because else "every condition is met"]
        lines += [f"{name}: {limits[name]}" for name in ("idle", "power") if name in limits]
        self.status.setText("\n".join(lines) if limits else "")
        self.status.setToolTip("\n".join(f"{name}: {value}" for name, value in limits.items()))
