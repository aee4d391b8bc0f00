"""The new-project form: local checks, hyperparameters, upload with progress, start."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PyQt5.QtWidgets import QSpinBox

from requestor_gui.main_window import MainWindow
from requestor_gui.views.new_project import NewProjectView
from tests.helpers.gui import WAIT_MS, log_in


@pytest.fixture
def form(qtbot, window: MainWindow, requestor, gui_api) -> NewProjectView:
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    window.mode.requestor_button.click()
    window.projects.new_button.click()
    assert window.stack.currentWidget() is window.new_project
    return window.new_project


def pick(qtbot, form: NewProjectView, **paths: Path | None) -> None:
    with qtbot.waitSignal(form.inspected, timeout=WAIT_MS):
        form.set_files(paths)


def digits(digits_files) -> dict[str, Path]:
    return {"model": digits_files.model, "data": digits_files.data, "labels": digits_files.labels}


def small_run(form: NewProjectView) -> None:
    form.form.set_values({"epochs": 1, "total_tasks": 4, "task_size": 2, "passes": 1})


def test_create_and_start_a_project_with_the_digits_files(
    qtbot, window: MainWindow, form: NewProjectView, digits_files, requestor
) -> None:
    assert not form.create_button.isEnabled()
    pick(qtbot, form, **digits(digits_files))
    assert "4,810 parameters" in form.summaries["model"].text()
    assert "1,437 rows" in form.summaries["data"].text()
    assert form.layers.rowCount() == 3
    small_run(form)
    assert "2 rounds per pass" in form.form.plan.text()
    assert form.create_button.isEnabled()
    form.name.setText("digits from the GUI")
    assert not form.start_box.isChecked()  # by default the estimate comes before Start
    form.start_box.setChecked(True)

    with qtbot.waitSignal(form.created, timeout=WAIT_MS) as created:
        form.create_button.click()
        assert not form.create_button.isEnabled()  # no double submit while uploading
    project_id = created.args[0]
    assert window.stack.currentWidget() is window.detail
    qtbot.waitUntil(lambda: window.detail.state == "queued", timeout=WAIT_MS)
    assert window.detail.title.text() == "digits from the GUI"
    assert window.detail.stats["round"].value.text() == "0 of 2"

    _, client = requestor
    project = client.project(project_id)
    assert project.state == "queued"
    assert {f.kind for f in project.files} == {"model", "data", "labels"}
    assert project.hyperparameters.total_tasks == 4
    # The form is clean again for the next project.
    assert form.pickers["model"].path() is None and not form.create_button.isEnabled()


def test_invalid_files_are_explained_and_block_the_upload(
    qtbot, form: NewProjectView, digits_files, tmp_path: Path
) -> None:
    model = tmp_path / "uncompiled.h5"
    shutil.copyfile(digits_files.model, model)
    with h5py.File(model, "r+") as root:
        del root.attrs["training_config"]
    pick(qtbot, form, **digits(digits_files) | {"model": model})
    assert "the model is not compiled" in form.summaries["model"].text()
    assert not form.create_button.isEnabled()

    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((1437, 65), dtype=np.float32))
    pick(qtbot, form, model=digits_files.model, data=wide)
    assert form.file_message.isVisible()
    assert "the model's input expects (64)" in form.file_message.text()
    assert not form.create_button.isEnabled()

    pick(qtbot, form, data=digits_files.data)
    assert not form.file_message.isVisible() and form.create_button.isEnabled()


def test_object_arrays_need_the_trust_choice(
    qtbot, form: NewProjectView, digits_files, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.npy"
    np.save(labels, np.load(digits_files.labels).astype(object), allow_pickle=True)
    pick(qtbot, form, **digits(digits_files) | {"labels": labels})
    assert form.trust.isVisible() and not form.trust.isChecked()
    assert "dtype object" in form.summaries["labels"].text()
    assert not form.create_button.isEnabled()
    with qtbot.waitSignal(form.inspected, timeout=WAIT_MS):
        form.trust.setChecked(True)
    assert "converted from dtype=object" in form.summaries["labels"].text()
    assert form.create_button.isEnabled()


def test_hyperparameters_are_checked_inline_and_never_blank(
    qtbot, form: NewProjectView, digits_files
) -> None:
    pick(qtbot, form, **digits(digits_files))
    fields = form.form.fields
    fields["task_size"].setValue(20)  # K > T=12
    assert form.form.message.isVisible()
    assert "cannot exceed total_tasks" in form.form.message.text()
    assert not form.create_button.isEnabled()
    fields["task_size"].setValue(4)
    fields["total_tasks"].setValue(5000)  # more shards than the 1,437 rows
    assert "exceeds the 1437 rows" in form.form.message.text()
    fields["total_tasks"].setValue(12)
    assert form.create_button.isEnabled()

    epochs = fields["epochs"]
    assert isinstance(epochs, QSpinBox)
    epochs.setValue(7)
    epochs.lineEdit().clear()  # a person empties the field...
    assert form.form.values()["epochs"] == 7  # ...the last valid value is what is sent
    assert epochs.text() == "7"
    assert form.form.values()["max_contributors"] is None  # "same as K"
    assert (epochs.minimum(), epochs.maximum()) == (1, 1000)  # the API's own range
    assert "K: tasks whose updates are averaged" in fields["task_size"].toolTip()


def test_validation_files_are_optional_and_explained(
    qtbot, window: MainWindow, form: NewProjectView, digits_files, requestor
) -> None:
    pick(
        qtbot,
        form,
        **digits(digits_files),
        validation_data=digits_files.test_data,
        validation_labels=digits_files.test_labels,
    )
    assert "360 rows" in form.summaries["validation_data"].text()
    small_run(form)
    form.start_box.setChecked(False)
    with qtbot.waitSignal(form.created, timeout=WAIT_MS) as created:
        form.create_button.click()
    project_id, warnings = created.args
    _, client = requestor
    kinds = {f.kind for f in client.project(project_id).files}
    assert kinds == {"model", "data", "labels", "validation_data", "validation_labels"}
    assert warnings == []
    qtbot.waitUntil(lambda: window.detail.state == "created", timeout=WAIT_MS)
    assert window.detail.action_buttons["start"].isVisible()


def test_labels_the_model_cannot_learn_block_the_upload(
    qtbot, form: NewProjectView, digits_files, requestor, tmp_path: Path
) -> None:
    """Issue 15: labels up to 63 for 10 output units are refused before anything is sent."""
    labels = np.load(digits_files.labels)
    labels[7] = 63
    np.save(tmp_path / "y63.npy", labels)
    pick(qtbot, form, **digits(digits_files) | {"labels": tmp_path / "y63.npy"})
    assert form.file_message.isVisible()
    assert "Labels go up to 63 but the model's last layer has 10 units" in (
        form.file_message.text()
    )
    assert not form.create_button.isEnabled()
    held = tmp_path / "held.npy"
    held_labels = np.load(digits_files.test_labels)
    held_labels[3] = 63
    np.save(held, held_labels)
    pick(
        qtbot,
        form,
        labels=digits_files.labels,
        validation_data=digits_files.test_data,
        validation_labels=held,
    )
    assert "Validation files: labels go up to 63" in form.file_message.text()
    assert not form.create_button.isEnabled()
    _, client = requestor
    assert client.projects() == [], "nothing was created or uploaded"
