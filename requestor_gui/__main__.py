"""``daig-gui`` / ``daig gui``: start the DAIG desktop client."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import TracebackType
from typing import TYPE_CHECKING

from requestor_gui.system_libs import check_before_qt

if TYPE_CHECKING:
    from requestor_gui.main_window import MainWindow

log = logging.getLogger(__name__)


def _unexpected(
    kind: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    """A bug must not kill the window: log the traceback, show a sentence."""
    from PyQt5.QtWidgets import QApplication, QMessageBox

    from requestor_gui.errors import describe

    if issubclass(kind, KeyboardInterrupt):
        QApplication.quit()
        return
    log.error("unexpected error in the GUI", exc_info=(kind, exc, traceback))
    if QApplication.instance() is not None:
        QMessageBox.warning(None, "DAIG", describe(exc))


NO_DISPLAY = (
    "daig gui needs a graphical display, and none was found (DISPLAY and WAYLAND_DISPLAY are "
    "unset). Run it from a desktop session, over `ssh -X`, or under `xvfb-run`; "
    "QT_QPA_PLATFORM=offscreen runs it without showing anything (for tests and screenshots)."
)


def display_missing() -> bool:
    """On Linux, Qt aborts the process without a display: say so in a sentence instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daig-gui", description=__doc__)
    parser.add_argument("--server", help="URL of the DAIG API (remembered once you log in)")
    parser.add_argument("--log-level", default="WARNING", help="e.g. INFO or DEBUG")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if display_missing():
        print(NO_DISPLAY, file=sys.stderr)
        return 1
    missing = check_before_qt()
    if missing:  # Qt would abort with its own message, naming no package
        print(missing.message(), file=sys.stderr)
        return 1
    # Until the window exists, Ctrl-C or SIGTERM simply ends the start-up.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))

    from PyQt5.QtCore import Qt
    from PyQt5.QtWidgets import QApplication

    from daig.logs import setup_logging
    from requestor_gui import style
    from requestor_gui.main_window import MainWindow
    from requestor_gui.settings import GuiSettings

    setup_logging(args.log_level, process="gui")
    QApplication.setAttribute(Qt.ApplicationAttribute.AA_EnableHighDpiScaling, True)
    QApplication.setAttribute(Qt.ApplicationAttribute.AA_UseHighDpiPixmaps, True)
    app = QApplication.instance() or QApplication(["daig-gui"])
    assert isinstance(app, QApplication)
    app.setApplicationName("DAIG")
    sys.excepthook = _unexpected
    settings = GuiSettings.load()
    style.apply(app, settings.theme)
    if args.server:
        settings.server = args.server
    window = MainWindow(settings)
    # Closed to the tray, the window is hidden while the agent works: quit only for good.
    app.setQuitOnLastWindowClosed(False)
    window.closed_for_good.connect(app.quit)
    app.setWindowIcon(window.windowIcon())
    window.show()
    _close_on_signals(window)
    return int(app.exec_())


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl-C or SIGTERM quits the clean way (the agent gives its task back), even when the
    window would otherwise keep volunteering behind the tray icon."""
    from PyQt5.QtCore import QTimer

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: window.quit_app())
    # Python runs signal handlers only between bytecodes: wake it up now and then.
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


if __name__ == "__main__":
    sys.exit(main())
