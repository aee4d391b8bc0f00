"""The GUI's look: a light and a dark theme (palette and stylesheet), applied to the application.

Each theme sets every ``QPalette`` role in every colour group, so a dark desktop theme cannot
leave the GUI's dark text on its own dark background, and the stylesheet is built from the
same colours. ``system`` follows the desktop: dark if its window colour is dark.
"""

from __future__ import annotations

from dataclasses import dataclass

from PyQt5.QtGui import QColor, QPalette
from PyQt5.QtWidgets import QApplication

ACCENT = "#2f6fde"
DANGER = "#c0392b"
SUCCESS = "#1e8e3e"
MUTED = "#5f6b7a"

SYSTEM, LIGHT, DARK = "system", "light", "dark"
THEMES = (SYSTEM, LIGHT, DARK)


@dataclass(frozen=True)
class Theme:
    """The colours one theme is drawn with (``#rrggbb``)."""

    name: str
    window: str  # page background
    text: str  # titles and body text
    muted: str  # subtitles and hints
    base: str  # fields, tables, cards
    alternate: str  # alternate table rows, hovered buttons
    border: str
    field_border: str
    disabled_text: str
    disabled_back: str
    error_text: str
    error_back: str
    error_border: str
    info_text: str
    info_back: str
    info_border: str
    section_back: str  # table headers
    progress_back: str
    selection: str  # a selected table row (text stays ``text``)
    plot_back: str
    plot_fore: str
    link: str


LIGHT_THEME = Theme(
    name=LIGHT,
    window="#f5f7fa",
    text="#1d2733",
    muted=MUTED,
    base="#ffffff",
    alternate="#eef2f7",
    border="#dde3ea",
    field_border="#c7d0db",
    disabled_text="#6b7480",
    disabled_back="#f0f2f5",
    error_text="#a93226",
    error_back="#fdecea",
    error_border="#f5c6c0",
    info_text="#1d4f91",
    info_back="#e8f0fd",
    info_border="#c5d7f7",
    section_back="#eef2f7",
    progress_back="#eef1f5",
    selection="#dce8fb",
    plot_back="#ffffff",
    plot_fore="#3a4756",
    link="#1d5bc4",
)

DARK_THEME = Theme(
    name=DARK,
    window="#1b2028",
    text="#e6ebf1",
    muted="#a7b1bd",
    base="#252b34",
    alternate="#2d3440",
    border="#3a4452",
    field_border="#4a5565",
    disabled_text="#9aa3ae",
    disabled_back="#2a3039",
    error_text="#ffb4a9",
    error_back="#3d2222",
    error_border="#7a3a33",
    info_text="#b9d2ff",
    info_back="#1f2d44",
    info_border="#34507d",
    section_back="#2d3440",
    progress_back="#2d3440",
    selection="#2f4a75",
    plot_back="#252b34",
    plot_fore="#c9d3de",
    link="#8ab4ff",
)

_current = LIGHT_THEME


def current() -> Theme:
    """The theme applied last (the light one until ``apply`` chose another)."""
    return _current


def stylesheet(t: Theme) -> str:
    return f"""
QWidget {{ font-size: 10pt; }}
QMainWindow, QStackedWidget > QWidget, QScrollArea, QWidget#qt_scrollarea_viewport {{
    background: {t.window};
}}
QScrollBar:vertical {{ background: {t.window}; width: 12px; margin: 0; }}
QScrollBar:horizontal {{ background: {t.window}; height: 12px; margin: 0; }}
QScrollBar::handle {{ background: {t.field_border}; border-radius: 5px; margin: 2px; }}
QScrollBar::handle:vertical {{ min-height: 28px; }}
QScrollBar::handle:horizontal {{ min-width: 28px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: none; }}
QLabel[role="title"] {{ font-size: 18pt; font-weight: 600; color: {t.text}; }}
QLabel[role="subtitle"] {{ font-size: 11pt; color: {t.muted}; }}
QLabel[role="hint"] {{ font-size: 9pt; color: {t.muted}; }}
QFrame[role="error"] {{
    background: {t.error_back}; border: 1px solid {t.error_border}; border-radius: 6px;
}}
QFrame[role="error"] QLabel {{ color: {t.error_text}; background: transparent; border: none; }}
QFrame[role="info"] {{
    background: {t.info_back}; border: 1px solid {t.info_border}; border-radius: 6px;
}}
QFrame[role="info"] QLabel {{ color: {t.info_text}; background: transparent; border: none; }}
QFrame[role="error"] QPushButton, QFrame[role="info"] QPushButton {{ padding: 2px 10px; }}
QLabel[role="stat"] {{ font-size: 15pt; font-weight: 600; color: {t.text}; }}
QLabel[role="statname"] {{ font-size: 9pt; color: {t.muted}; }}
QLabel[role="pill"] {{
    border-radius: 10px; padding: 2px 10px; color: white; background: {MUTED};
    font-weight: 600;
}}
QFrame[role="card"] {{
    background: {t.base}; border: 1px solid {t.border}; border-radius: 10px;
}}
QFrame[role="header"] {{ background: #1d2733; }}
QFrame[role="header"] QLabel {{ color: #e8edf3; }}
QPushButton {{
    padding: 6px 14px; border-radius: 6px; border: 1px solid {t.field_border};
    background: {t.base}; color: {t.text};
}}
QPushButton:hover {{ background: {t.alternate}; }}
QPushButton:disabled {{ color: {t.disabled_text}; background: {t.disabled_back}; }}
QPushButton[role="primary"] {{
    background: {ACCENT}; color: white; border: 1px solid {ACCENT}; font-weight: 600;
}}
QPushButton[role="primary"]:hover {{ background: #2559b8; }}
QPushButton[role="primary"]:disabled {{ background: #9db7e8; border-color: #9db7e8; }}
QPushButton[role="danger"] {{ color: {t.error_text}; border-color: {t.error_border}; }}
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
    background: {t.base}; border: 1px solid {t.border}; border-radius: 12px; padding: 24px;
    text-align: left; font-size: 11pt;
}}
QPushButton[role="card"]:hover {{ border: 2px solid {ACCENT}; }}
QLineEdit {{
    padding: 5px 6px; border: 1px solid {t.field_border}; border-radius: 5px;
    background: {t.base}; color: {t.text};
}}
QLineEdit:focus {{ border: 1px solid {ACCENT}; }}
QAbstractSpinBox, QComboBox {{ min-height: 24px; min-width: 90px; }}
QProgressBar {{
    border: 1px solid {t.field_border}; border-radius: 5px; background: {t.progress_back};
    text-align: center; min-height: 16px; color: {t.text};
}}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QTableView {{
    background: {t.base}; border: 1px solid {t.border}; border-radius: 8px; color: {t.text};
    gridline-color: {t.alternate}; selection-background-color: {t.selection};
    selection-color: {t.text};
}}
QHeaderView::section {{
    background: {t.section_back}; padding: 6px; border: none; border-bottom: 1px solid {t.border};
    font-weight: 600; color: {t.text};
}}
QGroupBox {{
    background: {t.base}; border: 1px solid {t.border}; border-radius: 8px; margin-top: 14px;
    padding: 12px 10px 10px 10px; font-weight: 600; color: {t.text};
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {t.text}; }}
"""


STYLESHEET = stylesheet(LIGHT_THEME)  # kept for code that wants the default look

STATE_COLOURS = {
    "created": MUTED,
    "queued": "#8e6c00",
    "running": ACCENT,
    "paused": "#b26a00",
    "done": SUCCESS,
    "failed": DANGER,
    "cancelled": "#7a7f87",
}


def palette(t: Theme) -> QPalette:
    """Every role in every group (Active, Inactive, Disabled) from the theme's colours."""
    p = QPalette()
    roles = {
        QPalette.Window: t.window,
        QPalette.WindowText: t.text,
        QPalette.Base: t.base,
        QPalette.AlternateBase: t.alternate,
        QPalette.Text: t.text,
        QPalette.Button: t.base,
        QPalette.ButtonText: t.text,
        QPalette.BrightText: "#ffffff",
        QPalette.ToolTipBase: t.base,
        QPalette.ToolTipText: t.text,
        QPalette.Highlight: ACCENT,
        QPalette.HighlightedText: "#ffffff",
        QPalette.PlaceholderText: t.muted,
        QPalette.Link: t.link,
        QPalette.LinkVisited: t.link,
        QPalette.Light: t.alternate,
        QPalette.Midlight: t.border,
        QPalette.Mid: t.field_border,
        QPalette.Dark: t.muted,
        QPalette.Shadow: "#000000",
    }
    for group in (QPalette.Active, QPalette.Inactive, QPalette.Disabled):
        for role, colour in roles.items():
            p.setColor(group, role, QColor(colour))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor(t.disabled_text))
    p.setColor(QPalette.Disabled, QPalette.Button, QColor(t.disabled_back))
    return p


_system_window: QColor | None = None  # the desktop's window colour, before ours replaced it


def system_is_dark(app: QApplication) -> bool:
    """Whether the desktop's own palette has a dark window background."""
    window = _system_window or app.palette().color(QPalette.Window)
    return bool(window.lightness() < 128)


def resolve(choice: str, app: QApplication) -> Theme:
    """The theme ``choice`` (system, light or dark) stands for on this desktop."""
    if choice == DARK or (choice == SYSTEM and system_is_dark(app)):
        return DARK_THEME
    return LIGHT_THEME


def apply(app: QApplication, choice: str = SYSTEM) -> Theme:
    """Fusion style with the chosen theme's palette and stylesheet; returns the theme."""
    global _current, _system_window
    if _system_window is None:
        _system_window = app.palette().color(QPalette.Window)
    theme = resolve(choice if choice in THEMES else SYSTEM, app)
    app.setStyle("Fusion")
    app.setPalette(palette(theme))
    app.setStyleSheet(stylesheet(theme))
    _current = theme
    return theme


def relative_luminance(colour: QColor) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return (
        0.2126 * linear(colour.red())
        + 0.7152 * linear(colour.green())
        + 0.0722 * linear(colour.blue())
    )


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def restyle(widget: object) -> None:
    """Re-apply the stylesheet after a dynamic property (``role``) changed."""
    style = getattr(widget, "style", None)
    if style is not None:
        style().unpolish(widget)
        style().polish(widget)
