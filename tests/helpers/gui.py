"""What the GUI tests share: their users' password, the signal timeout, unique names, logging in,
and projects and rounds as the API would describe them.

Kept free of Qt imports at module level: ``tests/gui/conftest.py`` chooses the offscreen
platform before anything imports PyQt5.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from daig.contract.http import ProjectOut, RoundOut
from daig.hyperparams import Hyperparameters

if TYPE_CHECKING:
    from requestor_gui.main_window import MainWindow

PASSWORD = "a long password"
WAIT_MS = 20_000


def unique(prefix: str = "gui") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def log_in(
    qtbot, window: MainWindow, server: str, user: str, password: str = PASSWORD, *, create: bool
) -> None:
    """Fill the login form and press the button; waits for the mode screen."""
    login = window.login
    login.server.setText(server)
    login.username.setText(user)
    login.password.setText(password)
    with qtbot.waitSignal(login.logged_in, timeout=WAIT_MS):
        (login.signup_button if create else login.login_button).click()
    assert window.stack.currentWidget() is window.mode


def project_out(**fields: Any) -> ProjectOut:
    """A project as ``GET /v1/projects/{id}`` describes it: ``fields`` over a fresh one."""
    fresh: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": "project",
        "state": "created",
        "hyperparameters": Hyperparameters(),
        "round": 0,
        "total_rounds": None,
        "accepted_tasks": 0,
        "total_task_results": None,
        "progress": 0.0,
        "active_contributors": 0,
        "files": [],
        "latest_metrics": None,
        "error": None,
        "created_at": "2025-01-01T00:00:00+00:00",
        "started_at": None,
        "finished_at": None,
    }
    return ProjectOut.model_validate(fresh | fields)


def round_out(**fields: Any) -> RoundOut:
    """A round as ``GET /v1/projects/{id}/rounds`` describes it: ``fields`` over an open one."""
    fresh: dict[str, Any] = {
        "index": 0,
        "opened_at": "2025-01-01T00:00:00+00:00",
        "closed_at": None,
        "accepted": 0,
        "rejected": 0,
        "metrics": None,
    }
    return RoundOut.model_validate(fresh | fields)
