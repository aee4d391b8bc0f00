"""The GUI's look: one light stylesheet with an accent colour, applied to the application."""

from __future__ import annotations

from PyQt5.QtWidgets import QApplication

ACCENT = "#2f6fde"
DANGER = "#c0392b"
SUCCESS = "#1e8e3e"
MUTED = "#5f6b7a"

STYLESHEET = f"""
QWidget {{ font-size: 10pt; }}
QMainWindow, QStackedWidget > QWidget {{ background: #f5f7fa; }}
QLabel[role="title"] {{ font-size: 18pt; font-weight: 600; color: #1d2733; }}
QLabel[role="subtitle"] {{ font-size: 11pt; color: {MUTED}; }}
QLabel[role="hint"] {{ font-size: 9pt; color: {MUTED}; }}
QLabel[role="error"] {{
    color: {DANGER}; background: #fdecea; border: 1px solid #f5c6c0;
    border-radius: 6px; padding: 6px 8px;
}}
QLabel[role="info"] {{
    color: #1d4f91; background: #e8f0fd; border: 1px solid #c5d7f7;
    border-radius: 6px; padding: 6px 8px;
}}
QLabel[role="stat"] {{ font-size: 15pt; font-weight: 600; color: #1d2733; }}
QLabel[role="statname"] {{ font-size: 9pt; color: {MUTED}; }}
QLabel[role="pill"] {{
    border-radius: 10px; padding: 2px 10px; color: white; background: {MUTED};
    font-weight: 600;
}}
QFrame[role="card"] {{
    background: white; border: 1px solid #dde3ea; border-radius: 10px;
}}
QFrame[role="header"] {{ background: #1d2733; }}
QFrame[role="header"] QLabel {{ color: #e8edf3; }}
QPushButton {{
    padding: 6px 14px; border-radius: 6px; border: 1px solid #c7d0db; background: white;
}}
QPushButton:hover {{ background: #eef2f7; }}
QPushButton:disabled {{ color: #a0a8b3; background: #f0f2f5; }}
QPushButton[role="primary"] {{
    background: {ACCENT}; color: white; border: 1px solid {ACCENT}; font-weight: 600;
}}
QPushButton[role="primary"]:hover {{ background: #2559b8; }}
QPushButton[role="primary"]:disabled {{ background: #9db7e8; border-color: #9db7e8; }}
QPushButton[role="danger"] {{ color: {DANGER}; border-color: #e6b0aa; }}
QPushButton[role="go"] {{
    background: {SUCCESS}; color: white; border: 1px solid {SUCCESS}; font-weight: 600;
    font-size: 12pt; padding: 10px 24px;
}}
QPushButton[role="go"]:disabled {{ background: #a8d5b5; border-color: #a8d5b5; }}
QPushButton[role="stop"] {{
    background: {DANGER}; color: white; border: 1px solid {DANGER}; font-weight: 600;
    font-size: 12pt; padding: 10px 24px;
}}
QPushButton[role="stop"]:disabled {{ background: #e8b4ae; border-color: #e8b4ae; }}
QPushButton[role="mode"] {{
    background: transparent; color: #c9d3de; border: 1px solid #3a4756; padding: 4px 12px;
}}
QPushButton[role="mode"]:checked {{ background: {ACCENT}; color: white; border-color: {ACCENT}; }}
QPushButton[role="card"] {{
    background: white; border: 1px solid #dde3ea; border-radius: 12px; padding: 24px;
    text-align: left; font-size: 11pt;
}}
QPushButton[role="card"]:hover {{ border: 2px solid {ACCENT}; }}
QLineEdit {{
    padding: 5px 6px; border: 1px solid #c7d0db; border-radius: 5px; background: white;
}}
QLineEdit:focus {{ border: 1px solid {ACCENT}; }}
QAbstractSpinBox, QComboBox {{ min-height: 24px; min-width: 90px; }}
QProgressBar {{
    border: 1px solid #c7d0db; border-radius: 5px; background: #eef1f5; text-align: center;
    min-height: 16px;
}}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QTableView {{
    background: white; border: 1px solid #dde3ea; border-radius: 8px;
    gridline-color: #eef1f5; selection-background-color: #dce8fb; selection-color: #1d2733;
}}
QHeaderView::section {{
    background: #eef2f7; padding: 6px; border: none; border-bottom: 1px solid #dde3ea;
    font-weight: 600; color: #3a4756;
}}
QGroupBox {{
    background: white; border: 1px solid #dde3ea; border-radius: 8px; margin-top: 14px;
    padding: 12px 10px 10px 10px; font-weight: 600;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #3a4756; }}
"""

STATE_COLOURS = {
    "created": MUTED,
    "queued": "#8e6c00",
    "running": ACCENT,
    "paused": "#b26a00",
    "done": SUCCESS,
    "failed": DANGER,
    "cancelled": "#7a7f87",
}


def apply(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setStyleSheet(STYLESHEET)


def restyle(widget: object) -> None:
    """Re-apply the stylesheet after a dynamic property (``role``) changed."""
    style = getattr(widget, "style", None)
    if style is not None:
        style().unpolish(widget)
        style().polish(widget)
