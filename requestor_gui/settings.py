"""The GUI's remembered settings: server URL, last username, the volunteer's limits, theme.

Stored as JSON in ``$XDG_CONFIG_HOME/daig/gui.json`` (``~/.config/daig/gui.json``). The
password is never written anywhere: it lives in memory for the session only.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8000"


def settings_file() -> Path:
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "daig" / "gui.json"


@dataclass
class GuiSettings:
    """What the GUI remembers between runs (never a password or a token)."""

    server: str = DEFAULT_SERVER
    username: str = ""
    mode: str = ""  # "requestor" or "provider": the last mode chosen
    threads: int = 0  # CPU threads training may use; 0 = all
    memory_mb: int = 0  # stop a task whose training uses more memory; 0 = no cap
    idle_minutes: int = 0  # work only after this long without input; 0 = whenever
    hours: str = ""  # work only in this daily window, e.g. "22:00-07:00"; "" = any time
    work_on_battery: bool = False
    theme: str = "system"  # "system" (follow the desktop), "light" or "dark"
    keep_volunteering: bool = True  # closing the window keeps the agent working (tray or process)

    @classmethod
    def load(cls, path: Path | None = None) -> GuiSettings:
        """The saved settings, or defaults if the file is missing or unreadable."""
        path = path or settings_file()
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable GUI settings %s (%s)", path, exc)
            return cls()
        return cls.from_dict(raw if isinstance(raw, dict) else {})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GuiSettings:
        """Known keys of the right type only: a hand-edited file cannot break the GUI."""
        defaults = cls()
        values: dict[str, Any] = {}
        for spec in fields(cls):
            value = raw.get(spec.name, getattr(defaults, spec.name))
            wanted = type(getattr(defaults, spec.name))
            if isinstance(value, wanted) and (wanted is bool or not isinstance(value, bool)):
                values[spec.name] = value
        settings = cls(**values)
        settings.threads = max(0, settings.threads)
        settings.memory_mb = max(0, settings.memory_mb)
        settings.idle_minutes = max(0, settings.idle_minutes)
        if settings.theme not in ("system", "light", "dark"):
            settings.theme = "system"
        if settings.hours and not _valid_hours(settings.hours):
            settings.hours = ""
        return settings

    def save(self, path: Path | None = None) -> None:
        path = path or settings_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_suffix(".tmp")
            temp.write_text(json.dumps(asdict(self), indent=2))
            temp.replace(path)
        except OSError as exc:  # settings are a convenience: never fail the GUI over them
            log.warning("could not save GUI settings to %s (%s)", path, exc)


def _valid_hours(text: str) -> bool:
    from provider_agent.politeness import Hours

    try:
        Hours.parse(text)
    except ValueError:
        return False
    return True
