"""Every screen fits a laptop (1366x768, 1280x720), the window never grows by itself, the
light and dark themes are readable, and the mouse wheel leaves unfocused boxes alone.

The layout checks read geometry only: every visible widget a layout manages lies inside its
parent and does not overlap its siblings of the same layout; every table's column is wide
enough for its heading; a page that needs more height scrolls vertically, none needs
horizontal scrolling.
"""

from __future__ import annotations

import pytest
from PyQt5.QtCore import QPoint, QPointF, Qt
from PyQt5.QtGui import QColor, QPalette, QWheelEvent
from PyQt5.QtWidgets import (
    QApplication,
    QComboBox,
    QLayout,
    QSpinBox,
    QTableView,
    QWidget,
)

from daig.client import DaigClient
from daig.hyperparams import Hyperparameters
from requestor_gui import style
from requestor_gui.main_window import MainWindow
from tests.helpers.gui import WAIT_MS, log_in

# Screen sizes, less a 40 px taskbar and a 28 px title bar: the room a maximized window has.
SCREENS = [(1366, 768 - 68), (1280, 720 - 68)]
LONG_ERROR = "Could not refresh: " + "the server said something very long " * 40


def layout_problems(widget: QWidget) -> list[str]:
    """Widgets placed outside their parent, squeezed to nothing, or overlapping a sibling."""
    problems: list[str] = []
    layout = widget.layout()
    if layout is not None:
        problems += _check_layout(widget, layout)
    for child in widget.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
        if child.isVisible():
            problems += layout_problems(child)
    return problems


def _check_layout(owner: QWidget, layout: QLayout) -> list[str]:
    problems, placed = [], []
    for i in range(layout.count()):
        item = layout.itemAt(i)
        if item is None:
            continue
        inner = item.layout()
        if inner is not None:
            problems += _check_layout(owner, inner)
            continue
        child = item.widget()
        if child is None or not child.isVisible():
            continue
        name = f"{type(owner).__name__}>{type(child).__name__}({_text(child)})"
        box = child.geometry()
        if box.width() <= 0 or box.height() <= 0:
            problems.append(f"{name} squeezed to {box.width()}x{box.height()}")
        elif not owner.rect().contains(box):
            problems.append(f"{name} {box} outside its parent {owner.rect()}")
        for other_name, other in placed:
            if box.intersects(other):
                problems.append(f"{name} overlaps {other_name}")
        placed.append((name, box))
    return problems


def clipped_headings(widget: QWidget) -> list[str]:
    """Visible tables' column headings that do not fit their column."""
    problems = []
    for table in widget.findChildren(QTableView):
        header, model = table.horizontalHeader(), table.model()
        if not table.isVisible() or header is None or model is None:
            continue
        metrics = header.fontMetrics()
        for column in range(model.columnCount()):
            heading = str(model.headerData(column, Qt.Orientation.Horizontal))
            needed = metrics.horizontalAdvance(heading) + 2 * header.style().pixelMetric(
                header.style().PM_HeaderMargin
            )
            if header.sectionSize(column) < needed:
                problems.append(f"{heading!r}: {header.sectionSize(column)} < {needed} px")
    return problems


def _text(widget: QWidget) -> str:
    text = getattr(widget, "text", None)
    return str(text())[:30] if callable(text) else ""


def check_fits(qtbot, window: MainWindow, size: tuple[int, int], what: str) -> None:
    qtbot.wait(50)  # let the layouts settle
    assert (window.width(), window.height()) == size, f"{what}: the window changed size"
    bar = window.page_area.horizontalScrollBar()
    assert bar is not None and bar.maximum() == 0, f"{what}: needs horizontal scrolling"
    problems = layout_problems(window.centralWidget())
    assert not problems, f"{what} at {size}: " + "; ".join(problems[:5])
    clipped = clipped_headings(window.centralWidget())
    assert not clipped, f"{what} at {size}: headings cut: " + "; ".join(clipped)


@pytest.mark.parametrize("size", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_screen_fits(
    qtbot, window: MainWindow, requestor, gui_api, digits_files, size: tuple[int, int]
) -> None:
    user, client = requestor
    window.resize(*size)
    check_fits(qtbot, window, size, "login")
    window.login.message.show_error(LONG_ERROR)
    check_fits(qtbot, window, size, "login with a long error")
    assert window.login.message.elided

    log_in(qtbot, window, gui_api.url, user, create=False)
    check_fits(qtbot, window, size, "mode")

    project = _project(client, digits_files)
    window.mode.requestor_button.click()
    qtbot.waitUntil(lambda: window.projects.model.rowCount() == 1, timeout=WAIT_MS)
    check_fits(qtbot, window, size, "projects with credits")

    window.show_new_project()
    check_fits(qtbot, window, size, "new project")
    window.new_project.message.show_error(LONG_ERROR)
    check_fits(qtbot, window, size, "new project with a long error")

    window.show_project(project)
    qtbot.waitUntil(lambda: window.detail.state == "created", timeout=WAIT_MS)
    window.detail.message.show_error(LONG_ERROR)
    check_fits(qtbot, window, size, "project detail with a long error")

    window.choose_mode("provider")
    window.provider.message.show_error(LONG_ERROR)
    check_fits(qtbot, window, size, "provider with credits")


def _project(client: DaigClient, digits_files) -> str:
    project = client.create_project("fits", Hyperparameters(total_tasks=4, task_size=2))
    for kind in ("model", "data", "labels"):
        client.upload_file(project.id, kind, getattr(digits_files, kind))
    return str(project.id)


def test_a_long_error_is_one_line_with_details(qtbot, window: MainWindow) -> None:
    window.resize(1000, 600)
    message = window.login.message
    message.show_error(LONG_ERROR)
    qtbot.wait(50)
    assert window.width() == 1000, "a long error must not widen the window"
    one_line = message.line.fontMetrics().height() + 30
    assert message.elided and message.height() <= one_line
    assert message.details.isVisible() and message.text() == LONG_ERROR
    assert message.line.text().endswith("…") and len(message.line.text()) < len(LONG_ERROR)

    message.details.click()
    assert message.line.text() == LONG_ERROR and not message.elided
    assert message.details.text() == "Less"
    message.details.click()
    assert message.elided

    message.show_error("Wrong password.")
    qtbot.wait(50)
    assert not message.elided and not message.details.isVisible()
    assert message.line.text() == "Wrong password."


ROLE_PAIRS = [
    (QPalette.Text, QPalette.Base),
    (QPalette.WindowText, QPalette.Window),
    (QPalette.ButtonText, QPalette.Button),
    (QPalette.HighlightedText, QPalette.Highlight),
    (QPalette.ToolTipText, QPalette.ToolTipBase),
]


@pytest.mark.parametrize("theme", [style.LIGHT, style.DARK])
def test_both_themes_are_readable(qapp: QApplication, theme: str) -> None:
    chosen = style.apply(qapp, theme)
    assert chosen.name == theme
    palette = qapp.palette()
    if theme == style.DARK:
        assert palette.color(QPalette.Window).lightness() < 80
    for group in (QPalette.Active, QPalette.Inactive):
        for text, back in ROLE_PAIRS:
            ratio = style.contrast(palette.color(group, text), palette.color(group, back))
            assert ratio >= 4.5, f"{theme}: {text} on {back} has contrast {ratio:.2f}"
    disabled = style.contrast(
        palette.color(QPalette.Disabled, QPalette.ButtonText),
        palette.color(QPalette.Disabled, QPalette.Button),
    )
    assert disabled >= 3, f"{theme}: disabled buttons have contrast {disabled:.2f}"
    # The stylesheet draws with the same colours: text on pages and in fields.
    t = style.current()
    for fore, back in ((t.text, t.window), (t.text, t.base), (t.muted, t.window)):
        ratio = style.contrast(QColor(fore), QColor(back))
        assert ratio >= 4.5, f"{theme}: {fore} on {back} has contrast {ratio:.2f}"
    style.apply(qapp, style.LIGHT)


def test_system_follows_a_dark_desktop(qapp: QApplication, monkeypatch) -> None:
    monkeypatch.setattr(style, "_system_window", QColor("#202020"))
    assert style.apply(qapp, style.SYSTEM).name == style.DARK
    monkeypatch.setattr(style, "_system_window", QColor("#efefef"))
    assert style.apply(qapp, style.SYSTEM).name == style.LIGHT


def test_the_theme_setting_applies_and_is_remembered(qtbot, window: MainWindow, qapp) -> None:
    window.shortcuts.themes[style.DARK].trigger()
    assert style.current().name == style.DARK and window.settings.theme == style.DARK
    assert qapp.palette().color(QPalette.Base).lightness() < 80
    window.shortcuts.themes[style.LIGHT].trigger()
    assert style.current().name == style.LIGHT


def _wheel(widget: QWidget, up: bool = True) -> None:
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(widget.rect().center())),
        QPoint(0, 0),
        QPoint(0, 120 if up else -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_the_wheel_changes_only_a_focused_box(qtbot, window: MainWindow) -> None:
    page = QWidget()
    qtbot.addWidget(page)
    spin, combo = QSpinBox(page), QComboBox(page)
    spin.setRange(0, 10)
    spin.setValue(5)
    combo.addItems(["a", "b", "c"])
    combo.setCurrentIndex(1)
    combo.move(0, 60)
    page.show()
    qtbot.waitExposed(page)
    assert spin.focusPolicy() == Qt.FocusPolicy.StrongFocus
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus

    page.setFocus()
    _wheel(spin)
    _wheel(combo, up=False)
    assert (spin.value(), combo.currentIndex()) == (5, 1), "unfocused boxes changed"

    page.activateWindow()
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    _wheel(spin)
    assert spin.value() == 6
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    _wheel(combo, up=False)
    assert combo.currentIndex() == 2


def test_the_real_limits_boxes_are_guarded(qtbot, window: MainWindow) -> None:
    box = window.provider.threads_box
    before = box.value()
    window.choose_mode("provider")
    window.activateWindow()
    window.provider.memory_box.setFocus()  # showing the page may have focused the box itself
    qtbot.waitUntil(window.provider.memory_box.hasFocus)
    _wheel(box)
    assert box.value() == before and box.focusPolicy() == Qt.FocusPolicy.StrongFocus
