"""The hyperparameter form has one widget per declared knob, with its default, range and help."""

from __future__ import annotations

import pytest
from PyQt5.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox

from daig.hyperparams import KNOBS, Hyperparameters
from requestor_gui.views.hyperparams_form import SAME_AS_K, HyperparamsForm, bounds


def test_one_widget_per_knob_with_its_default_range_and_help(qtbot) -> None:
    form = HyperparamsForm()
    qtbot.addWidget(form)
    assert set(form.fields) == set(KNOBS)
    for name, knob in KNOBS.items():
        field = form.fields[name]
        assert field.toolTip() == knob.help
        if knob.choices:
            assert isinstance(field, QComboBox)
            assert [field.itemText(i) for i in range(field.count())] == list(knob.choices)
            assert field.currentText() == knob.default
        elif knob.python_type is float:
            assert isinstance(field, QDoubleSpinBox)
            low, high = bounds(knob, field.decimals())
            assert (field.minimum(), field.maximum()) == pytest.approx((low, high))
            assert field.value() == pytest.approx(knob.default)
        else:
            assert isinstance(field, QSpinBox)
            low, high = bounds(knob)
            if knob.default is None:
                assert field.specialValueText() == SAME_AS_K
                assert (field.minimum() + 1, field.maximum()) == (low, high)
            else:
                assert (field.minimum(), field.maximum()) == (low, high)
                assert field.value() == knob.default
    assert form.params() == Hyperparameters()
