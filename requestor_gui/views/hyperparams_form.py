"""Hyperparameter fields with their defaults, ranges and hints, built from their declaration.

Every declared knob (``daig.hyperparams.KNOBS``) gets a widget (new server settings appear by
themselves under "Advanced"). Spin boxes and combo boxes only: a field can never be blank (an
emptied spin box keeps its last value), and the ranges are the API's own, so what the form
accepts the server accepts.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError
from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from daig.hyperparams import KNOBS, Hyperparameters, Knob, check_against_data
from requestor_gui.errors import describe
from requestor_gui.views.common import Message, button, label

BASIC = (
    "epochs",
    "batch_size",
    "validation_split",
    "total_tasks",
    "task_size",
    "max_contributors",
    "passes",
)
LABELS = {
    "total_tasks": "Total tasks (T)",
    "task_size": "Task size (K)",
    "delta_codec": "Update encoding",
}
DECIMALS = {"max_norm_ratio": 1}
STEPS = {
    "validation_split": 0.05,
    "trim_fraction": 0.05,
    "clip_factor": 0.1,
    "max_norm_ratio": 1,
    "share": 0.05,
}
# A field that only matters for some values of another: (controlling field, those values).
DEPENDS = {
    "trim_fraction": ("aggregation", {"trimmed_mean"}),
    "clip_factor": ("aggregation", {"clipped_mean"}),
    "outer_momentum": ("outer_optimizer", {"momentum", "nesterov"}),
}
SAME_AS_K = "same as K"

Field = QSpinBox | QDoubleSpinBox | QComboBox


def bounds(knob: Knob, decimals: int = 0) -> tuple[float, float]:
    """The inclusive range a spin box can offer for a knob (exclusive bounds one step in)."""
    step = 10.0**-decimals if decimals else 1.0
    low, high = -math.inf, math.inf
    if knob.ge is not None:
        low = knob.ge
    elif knob.gt is not None:
        low = knob.gt + step
    if knob.le is not None:
        high = knob.le
    elif knob.lt is not None:
        high = knob.lt - step
    return low, high


def title(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


class HyperparamsForm(QWidget):
    """Emits ``changed`` on every edit; ``params()`` gives the validated values."""

    changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields: dict[str, Field] = {}
        self._rows: int | None = None
        self._ready = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        names = list(KNOBS)
        layout.addWidget(self._group("Training", [n for n in BASIC if n in names]))
        self.advanced_button = button("Show advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.toggled.connect(self._toggle_advanced)
        layout.addWidget(self.advanced_button)
        self.advanced = self._group(
            "Advanced: robustness and update handling", [n for n in names if n not in BASIC]
        )
        self.advanced.hide()
        layout.addWidget(self.advanced)
        self.plan = label("", "hint", wrap=True)
        layout.addWidget(self.plan)
        self.message = Message()
        layout.addWidget(self.message)
        layout.addStretch(1)
        self._ready = True
        self._update()

    # --- building ---------------------------------------------------------------------------
    def _group(self, caption: str, names: list[str]) -> QGroupBox:
        group = QGroupBox(caption)
        form = QFormLayout(group)
        form.setVerticalSpacing(4)
        for name in names:
            knob = KNOBS[name]
            hint = knob.help
            field = self._field(knob)
            field.setToolTip(hint)
            field.setMaximumWidth(220)
            self.fields[name] = field
            box = QWidget()
            column = QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 6)
            column.setSpacing(2)
            column.addWidget(field)
            column.addWidget(label(hint, "hint", wrap=True))
            form.addRow(title(name), box)
        return group

    def _field(self, knob: Knob) -> Field:
        if knob.choices:
            combo = QComboBox()
            combo.addItems(list(knob.choices))
            combo.setCurrentText(str(knob.default))
            combo.currentTextChanged.connect(self._update)
            return combo
        spin: QSpinBox | QDoubleSpinBox
        if knob.python_type is float:
            assert isinstance(knob.default, int | float)
            spin = QDoubleSpinBox()
            decimals = DECIMALS.get(knob.name, 2)
            spin.setDecimals(decimals)
            spin.setSingleStep(STEPS.get(knob.name, 0.1))
            low, high = bounds(knob, decimals)
            spin.setRange(max(low, -1e9), min(high, 1e9))
            spin.setValue(float(knob.default))
        else:
            spin = QSpinBox()
            low, high = bounds(knob)
            low, high = max(low, -(2**31)), min(high, 2**31 - 1)
            if knob.default is None:  # max_contributors: None = K, a special value below 1
                spin.setRange(int(low) - 1, int(high))
                spin.setSpecialValueText(SAME_AS_K)
                spin.setValue(spin.minimum())
            else:
                spin.setRange(int(low), int(high))
                spin.setValue(int(knob.default))
        spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)
        spin.setAccelerated(True)
        spin.valueChanged.connect(self._update)
        return spin

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_button.setText(
            "Hide advanced settings" if shown else "Show advanced settings"
        )

    # --- values -----------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Every field's current value (never blank: an emptied box keeps its last value)."""
        values: dict[str, Any] = {}
        for name, field in self.fields.items():
            if isinstance(field, QComboBox):
                values[name] = field.currentText()
                continue
            field.interpretText()
            if isinstance(field, QSpinBox):
                if not field.text().strip():
                    field.setValue(field.value())  # show the value that will be used
                optional = field.specialValueText() and field.value() == field.minimum()
                values[name] = None if optional else field.value()
            else:
                if not field.text().strip():
                    field.setValue(field.value())
                values[name] = field.value()
        return values

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            field = self.fields[name]
            if isinstance(field, QComboBox):
                field.setCurrentText(str(value))
            elif isinstance(field, QSpinBox):
                field.setValue(field.minimum() if value is None else int(value))
            else:
                field.setValue(float(value))

    def reset(self) -> None:
        """Every field back to its default."""
        self.set_values({name: KNOBS[name].default for name in self.fields})

    def params(self) -> Hyperparameters:
        """The validated hyperparameters; raises ``ValueError`` with a readable reason."""
        params = Hyperparameters(**self.values())
        if self._rows is not None:
            check_against_data(params, self._rows)
        return params

    def set_rows(self, rows: int | None) -> None:
        """The training data's row count, for the checks that depend on it."""
        self._rows = rows
        self._update()

    @property
    def valid(self) -> bool:
        return not self.message.isVisibleTo(self)

    # --- feedback ---------------------------------------------------------------------------
    def _update(self) -> None:
        if not self._ready:
            return
        for name, (controller, values) in DEPENDS.items():
            field, control = self.fields.get(name), self.fields.get(controller)
            if field is not None and isinstance(control, QComboBox):
                field.setEnabled(control.currentText() in values)
        try:
            params = self.params()
        except (ValidationError, ValueError) as exc:
            self.message.show_error(describe(exc))
            self.plan.setText("")
        else:
            self.message.clear()
            self.plan.setText(plan_text(params, self._rows))
        self.changed.emit()


def plan_text(params: Hyperparameters, rows: int | None) -> str:
    """What the settings mean in rounds, shard sizes and volunteers."""
    per_pass = math.ceil(params.total_tasks / params.task_size)
    total = per_pass * params.passes
    shard = f" of about {rows // params.total_tasks:,} rows" if rows else ""
    return (
        f"Plan: {params.total_tasks} shards{shard}; each round averages K={params.task_size} "
        f"updates, so {per_pass} round{'s' * (per_pass != 1)} per pass x {params.passes} "
        f"pass{'es' * (params.passes != 1)} = {total} round{'s' * (total != 1)}; up to "
        f"{min(params.contributors, params.task_size)} volunteers train at once."
    )
