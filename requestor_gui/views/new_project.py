"""The new-project form: files checked locally, hyperparameters, upload with progress, start."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QScrollArea,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from daig import tempdirs
from requestor_gui import operations
from requestor_gui.account import Account
from requestor_gui.checks import KINDS, REQUIRED, TITLES, Inspection, inspect_files
from requestor_gui.errors import describe
from requestor_gui.models import LayerTableModel
from requestor_gui.views.common import FilePicker, Message, button, label, read_only_table
from requestor_gui.views.hyperparams_form import HyperparamsForm
from requestor_gui.workers import Runner, Worker

FILTERS = {
    "model": "Keras models (*.h5 *.hdf5 *.keras);;All files (*)",
    "data": "NumPy arrays (*.npy);;All files (*)",
}


class NewProjectView(QWidget):
    """Emits ``created(project_id, warnings)`` after the upload, ``closed`` on Cancel."""

    created = pyqtSignal(str, list)
    closed = pyqtSignal()
    inspected = pyqtSignal()  # after each local check of the files (tests wait on it)

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._account: Account | None = None
        self._scratch = tempdirs.process_dir("gui")
        self._generation = 0
        self._checking = False
        self._inspection = Inspection()
        self._upload: Worker | None = None
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(150)
        self._check_timer.timeout.connect(self._inspect)
        self._build()
        self._refresh_buttons()

    # --- building ---------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 18, 24, 12)
        outer.addWidget(label("New project", "title"))
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        body = QWidget()
        columns = QHBoxLayout(body)
        left = QVBoxLayout()
        left.addWidget(self._files_group())
        left.addWidget(self._summary_group(), 1)
        columns.addLayout(left, 3)
        self.form = HyperparamsForm()
        self.form.changed.connect(self._refresh_buttons)
        columns.addWidget(self.form, 2)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        outer.addWidget(self._upload_group())
        outer.addLayout(self._buttons())

    def _files_group(self) -> QGroupBox:
        group = QGroupBox("Model and data")
        form = QFormLayout(group)
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: the model's file name")
        self.name.setMaxLength(200)
        form.addRow("Project name", self.name)
        self.pickers: dict[str, FilePicker] = {}
        for kind in KINDS:
            optional = kind not in REQUIRED
            picker = FilePicker(
                f"Choose the {TITLES[kind].lower()}",
                FILTERS["model" if kind == "model" else "data"],
                optional=optional,
            )
            picker.changed.connect(self._files_changed)
            self.pickers[kind] = picker
            form.addRow(TITLES[kind] + ("" if optional else " *"), picker)
        form.addRow(
            "",
            label(
                "A compiled Keras model (.h5 or .keras) and .npy arrays with one row per "
                "sample. Validation files are optional: held-out rows to judge each round.",
                "hint",
                wrap=True,
            ),
        )
        self.trust = QCheckBox("I trust this file: I made it myself, convert it here")
        self.trust.setToolTip(
            "dtype=object arrays are read by unpickling, which can run code. DAIG never does "
            "that on a server or a volunteer's machine; with this ticked, it converts your "
            "own file to numbers here, on your computer, and uploads the copy."
        )
        self.trust.hide()
        self.trust.toggled.connect(self._files_changed)
        form.addRow("", self.trust)
        return group

    def _summary_group(self) -> QGroupBox:
        group = QGroupBox("What DAIG read from your files")
        layout = QVBoxLayout(group)
        grid = QGridLayout()
        self.summaries: dict[str, QLabel] = {}
        for row, kind in enumerate(KINDS):
            grid.addWidget(label(TITLES[kind]), row, 0, Qt.AlignmentFlag.AlignTop)
            summary = label("—", "hint", wrap=True)
            summary.setTextFormat(Qt.TextFormat.RichText)
            summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.summaries[kind] = summary
            grid.addWidget(summary, row, 1)
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)
        self.layers = LayerTableModel(self)
        self.layer_table = QTableView()
        self.layer_table.setModel(self.layers)
        read_only_table(self.layer_table, row_height=24)
        self.layer_table.setMinimumHeight(120)
        layout.addWidget(self.layer_table, 1)
        self.file_message = Message()
        layout.addWidget(self.file_message)
        return group

    def _upload_group(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 4, 0, 4)
        self.bars: dict[str, QProgressBar] = {}
        self.bar_rows: dict[str, QWidget] = {}
        for kind in KINDS:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            caption = label(f"Upload {TITLES[kind].lower()}")
            caption.setMinimumWidth(170)
            line.addWidget(caption)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setFormat("%p%")
            line.addWidget(bar, 1)
            self.bars[kind], self.bar_rows[kind] = bar, row
            layout.addWidget(row)
            row.hide()
        self.message = Message()
        layout.addWidget(self.message)
        return box

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.cancel_button = button("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        # Off by default: the project page then shows the cost and time estimate beside Start.
        self.start_box = QCheckBox("Start at once (skip the estimate)")
        self.start_box.setChecked(False)
        self.start_box.setToolTip(
            "Start training when the upload is done. Left unticked, the project opens with its "
            "cost in credits and a time estimate from the volunteers online, beside Start."
        )
        row.addWidget(self.start_box)
        self.create_button = button("Create project", "primary")
        self.create_button.clicked.connect(self.submit)
        row.addWidget(self.create_button)
        return row

    # --- state ------------------------------------------------------------------------------
    def set_account(self, account: Account | None) -> None:
        self._account = account

    def reset(self) -> None:
        """An empty form with default hyperparameters."""
        for picker in self.pickers.values():
            picker.edit.clear()
        self.name.clear()
        self.trust.setChecked(False)
        self.trust.hide()
        self.form.reset()
        self.message.clear()
        for row in self.bar_rows.values():
            row.hide()
        tempdirs.remove(self._scratch)
        self._scratch = tempdirs.process_dir("gui")
        self._generation += 1
        self._show(Inspection())

    def set_files(self, paths: dict[str, Path | None]) -> None:
        """Fill file fields (as if picked); checks start right after."""
        for kind, path in paths.items():
            self.pickers[kind].edit.setText(str(path) if path else "")
        self._files_changed()

    @property
    def uploading(self) -> bool:
        return self._upload is not None

    # --- local checks -----------------------------------------------------------------------
    def _files_changed(self) -> None:
        self._generation += 1
        self._checking = True
        self._refresh_buttons()
        self._check_timer.start()

    def _inspect(self) -> None:
        paths = {k: p for k, picker in self.pickers.items() if (p := picker.path()) is not None}
        generation = self._generation
        if not paths:
            self._checking = False
            self._show(Inspection())
            return
        for kind in paths:
            self.summaries[kind].setText("checking…")
        self._runner.start(
            inspect_files,
            paths,
            trust=self.trust.isChecked(),
            scratch=self._scratch,
            on_returned=lambda found: self._inspected(generation, found),
            on_errored=lambda message: self._inspection_failed(generation, message),
        )

    def _inspected(self, generation: int, found: Inspection) -> None:
        if generation != self._generation:
            return  # the files changed meanwhile; a newer check is on its way
        self._checking = False
        self._show(found)
        self.inspected.emit()

    def _inspection_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self._checking = False
            self.file_message.show_error(message)
            self._refresh_buttons()
            self.inspected.emit()

    def _show(self, found: Inspection) -> None:
        self._inspection = found
        for kind in KINDS:
            summary = self.summaries[kind]
            if kind in found.errors:
                summary.setText(f"<span style='color:#c0392b'>{_escape(found.errors[kind])}</span>")
            else:
                summary.setText(_escape(found.summaries.get(kind, "—")))
        self.layers.set_layers(found.layers)
        self.trust.setVisible(bool(found.object_arrays) or self.trust.isChecked())
        if found.problems:
            self.file_message.show_error("\n".join(found.problems))
        else:
            self.file_message.clear()
        self.form.set_rows(found.rows)
        if not self.name.text().strip() and "model" in found.upload_paths:
            self.name.setPlaceholderText(self.pickers["model"].path().stem)  # type: ignore[union-attr]
        self._refresh_buttons()

    # --- upload -----------------------------------------------------------------------------
    def _refresh_buttons(self) -> None:
        ready = (
            self._inspection.ok and not self._checking and self.form.valid and not self.uploading
        )
        self.create_button.setEnabled(ready)
        self.create_button.setToolTip("" if ready else self._why_not())
        self.cancel_button.setText("Cancel upload" if self.uploading else "Cancel")

    def _why_not(self) -> str:
        if self.uploading:
            return "Uploading…"
        if self._checking:
            return "Checking the files…"
        missing = self._inspection.missing
        if missing:
            return "Choose the " + ", ".join(TITLES[k].lower() for k in missing) + "."
        if not self._inspection.ok:
            return "Fix the problems shown with the files first."
        return "Fix the hyperparameters first."

    def submit(self) -> None:
        """Create the project and upload the checked files (in a worker)."""
        if self._account is None or not self.create_button.isEnabled():
            return
        try:
            params = self.form.params()
        except ValueError as exc:
            self.message.show_error(describe(exc))
            return
        files = {
            k: self._inspection.upload_paths[k] for k in KINDS if k in self._inspection.upload_paths
        }
        model = self.pickers["model"].path()
        name = self.name.text().strip() or (model.stem if model else "project")
        for kind in KINDS:
            self.bars[kind].setValue(0)
            self.bar_rows[kind].setVisible(kind in files)
        self.message.show_info("Uploading… you can keep using DAIG; this screen shows progress.")
        self._set_editable(False)
        self._upload = self._runner.start(
            operations.create_project,
            self._account,
            name,
            params,
            files,
            start=self.start_box.isChecked(),
            on_progress=self._transferred,
            on_returned=self._created,
            on_errored=self._failed,
            on_finished=self._upload_finished,
        )
        self._refresh_buttons()

    def _transferred(self, transfer: operations.Transfer) -> None:
        bar = self.bars.get(transfer.kind)
        if bar is None:
            return
        if transfer.total == 0 and transfer.done == 0:
            bar.setFormat("skipped")
            bar.setValue(0)
            return
        bar.setFormat("%p%")
        bar.setValue(int(1000 * transfer.done / transfer.total) if transfer.total else 0)

    def _created(self, created: operations.Created) -> None:
        project_id = str(created.project.id)
        warnings = list(created.warnings)
        self.reset()
        self.created.emit(project_id, warnings)

    def _failed(self, message: str) -> None:
        self.message.show_error(
            f"{message} Nothing was kept on the server; fix the problem and try again."
        )

    def _upload_finished(self) -> None:
        cancelled = self._upload is not None and self._upload.cancelled
        self._upload = None
        self._set_editable(True)
        if cancelled:
            self.message.show_info("Upload cancelled; the incomplete project was deleted.")
        self._refresh_buttons()

    def _cancel(self) -> None:
        if self._upload is not None:
            self._upload.cancel()
            self.message.show_info("Cancelling the upload…")
            return
        self.closed.emit()

    def _set_editable(self, editable: bool) -> None:
        for widget in (*self.pickers.values(), self.name, self.trust, self.form, self.start_box):
            widget.setEnabled(editable)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
