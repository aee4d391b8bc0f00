"""Polite volunteering's decisions: hours windows, power supplies (on sysfs-shaped trees),
idle time, and the status that shows every setting."""

from __future__ import annotations

from datetime import datetime
from datetime import time as clock_time
from pathlib import Path

import pytest

from provider_agent.politeness import Hours, Idle, Politeness, power_source, x11_idle


def test_hours_parse_and_wrap_past_midnight() -> None:
    night = Hours.parse("22:00-07:00")
    assert str(night) == "22:00-07:00"
    assert night.contains(clock_time(23, 30)) and night.contains(clock_time(6, 59))
    assert not night.contains(clock_time(7, 0)) and not night.contains(clock_time(12, 0))
    office = Hours.parse(" 09:00 - 17:30 ")
    assert office.contains(clock_time(9, 0)) and not office.contains(clock_time(17, 30))
    for bad in ("9-5", "22:00", "25:00-07:00", "evening"):
        with pytest.raises(ValueError, match="22:00-07:00"):
            Hours.parse(bad)


def _supply(root: Path, name: str, **files: str) -> None:
    (root / name).mkdir(parents=True)
    for key, value in files.items():
        (root / name / key).write_text(value + "\n")


def test_power_source_from_sysfs(tmp_path: Path) -> None:
    assert power_source(tmp_path / "missing") == "unknown"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert power_source(empty) == "unknown"  # a desktop or a container

    laptop = tmp_path / "laptop"
    _supply(laptop, "AC", type="Mains", online="1")
    _supply(laptop, "BAT0", type="Battery", status="Charging")
    assert power_source(laptop) == "ac"
    (laptop / "AC" / "online").write_text("0\n")
    (laptop / "BAT0" / "status").write_text("Discharging\n")
    assert power_source(laptop) == "battery"

    no_mains_file = tmp_path / "bat-only"
    _supply(no_mains_file, "BAT1", type="Battery", status="Full")
    assert power_source(no_mains_file) == "ac"
    (no_mains_file / "BAT1" / "status").write_text("Discharging\n")
    assert power_source(no_mains_file) == "battery"


def test_idle_is_unknown_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    idle = x11_idle()
    assert (idle.seconds, idle.source) == (None, "no X11 display")


def _politeness(**kwargs) -> Politeness:
    defaults = dict(
        clock=lambda: datetime(2026, 11, 30, 14, 5),
        idle_probe=lambda: Idle(90.0, "xprintidle"),
        power_probe=lambda: "ac",
    )
    return Politeness(**(defaults | kwargs))


def test_every_setting_is_shown_and_only_unmet_ones_pause() -> None:
    verdict = _politeness(threads=2, memory_mb=1024).check()
    assert verdict.ok and verdict.reasons == ()
    assert verdict.status == {
        "threads": "2",
        "memory": "1024 MB",
        "idle": "not required",
        "hours": "any time",
        "power": "on mains power",
    }
    busy = _politeness(idle_minutes=5).check()
    assert not busy.ok and busy.reasons == ("the computer is in use (idle 1.5 of 5 min)",)
    assert busy.status["idle"] == "1.5 min without input (xprintidle); needs 5"
    assert _politeness(idle_minutes=1).check().ok

    night = _politeness(hours=Hours.parse("22:00-07:00")).check()
    assert night.reasons == ("outside the set hours 22:00-07:00 (now 14:05)",)
    assert night.status["hours"] == "22:00-07:00 (now 14:05: outside)"

    battery = _politeness(power_probe=lambda: "battery").check()
    assert battery.reasons == ("running on battery",)
    assert battery.status["power"] == "on battery: paused"
    allowed = _politeness(power_probe=lambda: "battery", pause_on_battery=False).check()
    assert allowed.ok and allowed.status["power"] == "battery (battery allowed)"


def test_unknown_idle_time_is_reported_and_not_enforced() -> None:
    verdict = _politeness(idle_minutes=5, idle_probe=lambda: Idle(None, "no X11 display")).check()
    assert verdict.ok
    assert verdict.status["idle"] == "unknown (no X11 display); needs 5 min, not enforced"
    unknown_power = _politeness(power_probe=lambda: "unknown").check()
    assert unknown_power.ok and unknown_power.status["power"] == "unknown (no battery information)"
