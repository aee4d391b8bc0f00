"""The desktop integration: the app's ``.desktop`` file, its icon, and starting the background
agent at login.

Autostart is an XDG autostart entry, ``$XDG_CONFIG_HOME/autostart/daig-provider.desktop``
(``~/.config/autostart``), whose ``Exec=`` runs ``daig provider --use-saved-login``: the agent
as its own process, from the login saved at login (``provider_agent/saved_login.py``),
with the limits set in the window. The app's launcher goes to
``$XDG_DATA_HOME/applications/daig.desktop`` with the icon beside it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICON = Path(__file__).with_name("icons") / "daig.svg"
AUTOSTART_NAME = "daig-provider.desktop"


def autostart_file() -> Path:
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "autostart" / AUTOSTART_NAME


def app_file() -> Path:
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "applications" / "daig.desktop"


def provider_command() -> list[str]:
    """The background agent's command line, with this very interpreter."""
    return [sys.executable, "-m", "daig_cli", "provider", "--use-saved-login"]


def gui_command() -> list[str]:
    return [sys.executable, "-m", "daig_cli", "gui"]


def _exec_line(argv: list[str]) -> str:
    """Quote per the Desktop Entry spec (arguments with spaces or specials in double quotes)."""
    specials = set(" \t\n\"'\\><~|&;$*?#()`")

    def quote(arg: str) -> str:
        if not arg or specials & set(arg):
            escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
            return f'"{escaped}"'
        return arg

    return " ".join(quote(arg) for arg in argv).replace("%", "%%")


def parse_exec(line: str) -> list[str]:
    """The argv of an ``Exec=`` value written by ``_exec_line`` (for tests and checks)."""
    import shlex

    return shlex.split(line.replace("%%", "%"))


def _entry(name: str, comment: str, argv: list[str], extra: str = "") -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name={name}\n"
        f"Comment={comment}\n"
        f"Exec={_exec_line(argv)}\n"
        f"Icon={ICON}\n"
        "Terminal=false\n"
        f"{extra}"
    )


def autostart_enabled() -> bool:
    return autostart_file().exists()


def set_autostart(enabled: bool) -> Path:
    """Install or remove the autostart entry; returns its path."""
    path = autostart_file()
    if not enabled:
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        _entry(
            "DAIG volunteer",
            "Volunteer this computer to DAIG in the background (stop it from the DAIG window)",
            provider_command(),
            "X-GNOME-Autostart-enabled=true\nNoDisplay=true\n",
        )
    )
    return path


def install_app_entry() -> Path:
    """Install the app's launcher (menu entry with the icon)."""
    path = app_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        _entry(
            "DAIG",
            "Distributed A.I. Grid: train models on volunteers' computers, or volunteer",
            gui_command(),
            "Categories=Science;Education;\nStartupWMClass=daig-gui\n",
        )
    )
    return path
