"""Render each screen of the DAIG desktop client to PNG, with real data, into docs/gui-*.png.

Runs a real DAIG on this machine like ``daig demo`` (a fresh ``daig_screenshots`` database, the
local RabbitMQ, the API, scheduler, aggregator and one provider process), then drives the GUI
offscreen (``QT_QPA_PLATFORM=offscreen``, no display needed) through the journey a new user
takes: log in, choose a mode, fill the new-project form with the digits example, watch it
train to the end, look at the project list, volunteer as a provider. Every screen is saved on
the way, in a 1366x768 laptop's window (1366x700: less the taskbar and title bar), plus the
project screen in the dark theme and the provider screen on a 1280x720 screen (it scrolls).
Usage: ``.venv/bin/python scripts/screenshots.py [--out docs] [--name daig_screenshots]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PyQt5.QtWidgets import QApplication  # noqa: E402

from daig.client import DaigClient  # noqa: E402
from daig.hyperparams import Hyperparameters  # noqa: E402
from daig_cli.cluster import LocalCluster  # noqa: E402

USER, PASSWORD = "ada", "a long password"
NAME = "daig_screenshots"  # its database and RabbitMQ vhost (--name for another)
LAPTOP = (1366, 768 - 68)  # a 1366x768 screen less a taskbar and the title bar
SMALL = (1280, 720 - 68)


def wait_for(app: QApplication, what: str, predicate: Callable[[], object], timeout: float = 300):
    """Run the Qt event loop until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if value := predicate():
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def settle(app: QApplication, seconds: float = 0.5) -> None:
    """Let the event loop run for ``seconds`` (layouts, repaints, queued signals)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--name", default=NAME, help="the database and vhost to (re)create")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # Fixed names, replaced on each run: never another run's database or queues.
    cluster = LocalCluster.owned(
        prefix=args.name,
        database=args.name,
        vhost=args.name,
        env={"TF_CPP_MIN_LOG_LEVEL": "3"},
        settings={"credit_signup_grant": "5000"},  # its long-running project costs ~600
        remove_work=True,
    )
    # This process runs the GUI: never the developer's settings.
    os.environ["XDG_CONFIG_HOME"] = cluster.env["XDG_CONFIG_HOME"]
    os.environ["XDG_CACHE_HOME"] = cluster.env["XDG_CACHE_HOME"]
    try:
        cluster.start_servers()
        with DaigClient(cluster.api_url) as volunteer:
            volunteer.signup("volunteer", PASSWORD)
        cluster.start_provider("provider", "volunteer", PASSWORD, "--threads", "1")
        shoot(cluster.api_url, args.out, cluster.work)
    finally:
        cluster.close()
    return 0


def shoot(api_url: str, out: Path, work: Path) -> None:
    from daig.examples import write_digits
    from requestor_gui import style
    from requestor_gui.main_window import MainWindow
    from requestor_gui.settings import GuiSettings

    files = write_digits(work / "digits")
    app = QApplication.instance() or QApplication(["daig-gui"])
    assert isinstance(app, QApplication)
    style.apply(app, style.LIGHT)
    window = MainWindow(GuiSettings(server=api_url, username=USER, theme=style.LIGHT))
    window.resize(*LAPTOP)
    window.show()
    settle(app)

    def save(name: str) -> None:
        settle(app, 0.6)
        path = out / f"gui-{name}.png"
        window.grab().save(str(path))
        print(f"saved {path}")

    # 1. Log in (a new account).
    window.login.password.setText(PASSWORD)
    save("login")
    window.login.signup_button.click()
    wait_for(app, "the mode screen", lambda: window.stack.currentWidget() is window.mode)
    save("mode")

    # 2. Volunteer from the GUI too, in the background.
    window.mode.provider_button.click()
    window.provider.threads_box.setValue(1)
    window.provider.participate_button.click()
    wait_for(app, "the agent", lambda: window.provider.state.text().startswith("Participating"))

    # 3. The new-project form with the digits example, checked locally.
    window.mode_buttons["requestor"].click()
    window.projects.new_button.click()
    form = window.new_project
    form.name.setText("digits-mlp")
    form.set_files(
        {
            "model": files.model,
            "data": files.data,
            "labels": files.labels,
            "validation_data": files.test_data,
            "validation_labels": files.test_labels,
        }
    )
    wait_for(app, "the file checks", lambda: form.layers.rowCount() > 0)
    form.form.set_values(
        {"epochs": 3, "total_tasks": 12, "task_size": 2, "passes": 2, "validation_split": 0.1}
    )
    save("new-project")

    # 4. Create, start and watch it train: the project screen with its chart.
    form.start_box.setChecked(True)
    form.create_button.click()
    detail = window.detail
    wait_for(app, "the project screen", lambda: window.stack.currentWidget() is detail)
    wait_for(app, "training to finish", lambda: detail.state == "done", 600)
    save("project")
    window.set_theme(style.DARK)
    save("project-dark")
    window.set_theme(style.LIGHT)

    # 5. The project list, with one project training and one not started yet.
    with DaigClient(api_url) as client:
        client.login(USER, PASSWORD)
        busy = client.create_project(
            "digits-long", Hyperparameters(epochs=60, total_tasks=8, task_size=2, passes=1)
        )
        draft = client.create_project("digits-draft", Hyperparameters())
        for project in (busy, draft):
            for kind in ("model", "data", "labels"):
                client.upload_file(project.id, kind, getattr(files, kind))
        client.start(busy.id)
        window.show_projects()
        wait_for(app, "a round of the long project", lambda: client.project(busy.id).round >= 1)
        projects = window.projects
        refreshes: list[bool] = []
        projects.refreshed.connect(lambda: refreshes.append(True))
        wait_for(app, "the list", lambda: projects.model.rowCount() == 3 and refreshes)
        save("projects")

        # 6. The provider screen while this computer trains a task.
        window.mode_buttons["provider"].click()
        agent = window.provider
        wait_for(
            app,
            "a task half done",
            lambda: (
                agent.agent_thread is not None
                and 0.2 < agent.agent_thread.status.progress < 0.8
                and agent.agent_thread.status.tasks_done > 0
            ),
            300,
        )
        save("provider")
        window.resize(*SMALL)
        save("provider-1280x720")
        window.resize(*LAPTOP)
        agent.stop_button.click()
        wait_for(app, "the agent to stop", lambda: not agent.running, 60)
        client.cancel(busy.id)
    window.close()
    wait_for(app, "the window to close", lambda: not window.isVisible(), 60)


if __name__ == "__main__":
    sys.exit(main())
