"""The settings file: remembered server and limits, never a password, robust to bad files."""

from __future__ import annotations

import json
from pathlib import Path

from requestor_gui.settings import DEFAULT_SERVER, GuiSettings, settings_file


def test_settings_live_under_xdg_config_home(tmp_path: Path) -> None:
    assert settings_file() == tmp_path / "config" / "daig" / "gui.json"


def test_defaults_when_missing_and_round_trip() -> None:
    settings = GuiSettings.load()
    assert settings.server == DEFAULT_SERVER and settings.threads == 0
    settings.server, settings.username, settings.threads, settings.memory_mb = (
        "http://example:9000",
        "alice",
        2,
        2048,
    )
    settings.save()
    again = GuiSettings.load()
    assert (again.server, again.username, again.threads, again.memory_mb) == (
        "http://example:9000",
        "alice",
        2,
        2048,
    )
    assert "password" not in settings_file().read_text()


def test_a_broken_or_hand_edited_file_falls_back_to_defaults() -> None:
    path = settings_file()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert GuiSettings.load() == GuiSettings()
    path.write_text(json.dumps({"server": 5, "threads": "many", "memory_mb": -3, "extra": 1}))
    loaded = GuiSettings.load()
    assert loaded.server == DEFAULT_SERVER and loaded.threads == 0 and loaded.memory_mb == 0
