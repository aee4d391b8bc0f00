"""Fixtures for the GUI tests: real widgets, offscreen, against a real running API.

``QT_QPA_PLATFORM=offscreen`` lets the widgets run without a display. Each test gets its own
settings directory (so nothing touches the developer's ``~/.config``). ``gui_api`` is the real
API (uvicorn in a thread, on its own Postgres database and RabbitMQ vhost) shared by the
GUI tests, which keep apart by unique user names; the provider journey uses the end-to-end
``cluster`` of real processes instead (a fixture of the ``tests.helpers.fixtures`` plugin). The
helpers GUI tests share (``log_in``, ``unique``, ``PASSWORD``...) are in ``tests.helpers.gui``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

import pytest  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402

from daig import topology  # noqa: E402
from daig.broker import connect  # noqa: E402
from daig.client import DaigClient  # noqa: E402
from requestor_gui import style  # noqa: E402
from requestor_gui.main_window import MainWindow  # noqa: E402
from requestor_gui.settings import GuiSettings  # noqa: E402
from tests.helpers.gui import PASSWORD, unique  # noqa: E402
from tests.helpers.services import ApiServer, module_api_server  # noqa: E402


@pytest.fixture(autouse=True)
def _own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _styled(qapp: QApplication) -> None:
    style.apply(qapp)


@pytest.fixture(scope="session")
def gui_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with module_api_server(tmp_path_factory) as server:
        # The scheduler and aggregator would declare the broker topology; none runs here.
        connection = connect(server.settings.amqp_url)
        try:
            topology.declare(connection.channel())
        finally:
            connection.close()
        yield server


@pytest.fixture
def window(qtbot) -> Iterator[MainWindow]:
    """The main window on the login screen, closed cleanly (agent stopped) afterwards."""
    main = MainWindow(GuiSettings.load())
    main.show()
    qtbot.waitExposed(main)
    yield main
    # Not qtbot.addWidget: pytest-qt would delete the window before its agent stopped.
    if main.isVisible() or main.provider.running:
        main.quit_app()  # stops the agent too (a plain close may keep it volunteering)
        qtbot.waitUntil(lambda: not main.isVisible() and not main.provider.running, timeout=60_000)
    main.deleteLater()


@pytest.fixture
def requestor(gui_api: ApiServer) -> Iterator[tuple[str, DaigClient]]:
    """A signed-up user (name, logged-in client) for tests that start past the login."""
    user = unique("req")
    client = DaigClient(gui_api.url)
    client.signup(user, PASSWORD)
    client.login(user, PASSWORD)
    yield user, client
    client.close()
