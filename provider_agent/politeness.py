"""Polite volunteering: work only when the volunteer's machine can spare it.

Three conditions, each optional and each reported in the agent's status, whether or not the
platform lets us find out:

- idle: no keyboard or mouse input for N minutes. Known on X11 (``xprintidle``, else the
  XScreenSaver extension through ctypes); elsewhere (no display, Wayland, a server) it is
  ``unknown``, reported as such, and does not hold work back.
- hours: a daily window such as ``22:00-07:00`` (local time; may wrap past midnight).
- battery: pause while the machine runs on battery, read from ``/sys/class/power_supply``
  (Linux); no power supply information there means ``unknown`` (a desktop or a container).

CPU threads and memory caps are applied by the trainer (``trainer.py``); they are listed here
too so that the status shows every limit in one place.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path

log = logging.getLogger(__name__)
POWER_SUPPLY = Path("/sys/class/power_supply")


@dataclass(frozen=True)
class Hours:
    """A daily window ``[start, end)``, wrapping past midnight when ``end <= start``."""

    start: clock_time
    end: clock_time

    @classmethod
    def parse(cls, text: str) -> Hours:
        try:
            first, second = (part.strip() for part in text.split("-"))
            return cls(clock_time.fromisoformat(first), clock_time.fromisoformat(second))
        except ValueError as exc:
            raise ValueError(
                f"hours must look like 22:00-07:00 (start-end, 24-hour clock), not {text!r}"
            ) from exc

    def contains(self, moment: clock_time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Idle:
    """Seconds since the last user input, and how that was found out (or why it wasn't)."""

    seconds: float | None
    source: str


def x11_idle() -> Idle:
    """The X server's idle time: ``xprintidle`` if installed, else libXss via ctypes."""
    if not os.environ.get("DISPLAY"):
        return Idle(None, "no X11 display")
    tool = shutil.which("xprintidle")
    if tool:
        try:
            done = subprocess.run([tool], capture_output=True, text=True, timeout=5, check=True)
            return Idle(int(done.stdout.strip()) / 1000, "xprintidle")
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return Idle(None, f"xprintidle failed ({exc})")
    return _xss_idle()


class _XScreenSaverInfo(ctypes.Structure):
    _fields_ = [
        ("window", ctypes.c_ulong),
        ("state", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("til_or_since", ctypes.c_ulong),
        ("idle", ctypes.c_ulong),
        ("event_mask", ctypes.c_ulong),
    ]


def _xss_idle() -> Idle:
    x11_name, xss_name = ctypes.util.find_library("X11"), ctypes.util.find_library("Xss")
    if not x11_name or not xss_name:
        return Idle(None, "neither xprintidle nor libXss is installed")
    x11, xss = ctypes.cdll.LoadLibrary(x11_name), ctypes.cdll.LoadLibrary(xss_name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(_XScreenSaverInfo)
    xss.XScreenSaverQueryInfo.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(_XScreenSaverInfo),
    ]
    display = x11.XOpenDisplay(None)
    if not display:
        return Idle(None, "cannot open the X11 display")
    try:
        info = xss.XScreenSaverAllocInfo()
        if not xss.XScreenSaverQueryInfo(display, x11.XDefaultRootWindow(display), info):
            return Idle(None, "the X server has no screen saver extension")
        return Idle(info.contents.idle / 1000, "XScreenSaver")
    finally:
        x11.XCloseDisplay(display)


def power_source(root: Path = POWER_SUPPLY) -> str:
    """``ac``, ``battery`` or ``unknown``, from Linux's power supply class."""
    try:
        supplies = [p for p in root.iterdir() if (p / "type").exists()]
    except OSError:
        return "unknown"
    on_mains: bool | None = None  # None: no mains supply reports whether it is online
    has_battery = discharging = False
    for supply in supplies:
        kind = _read(supply / "type")
        if kind in ("Mains", "USB", "USB_C", "USB_PD"):
            online = _read(supply / "online")
            if online == "1":
                on_mains = True
            elif online == "0" and on_mains is None:
                on_mains = False
        elif kind == "Battery":
            has_battery = True
            discharging = discharging or _read(supply / "status") == "Discharging"
    if on_mains:
        return "ac"
    if discharging or (has_battery and on_mains is False):
        return "battery"
    return "ac" if has_battery else "unknown"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Verdict:
    """Whether work may run now; ``reasons`` say why not; ``status`` shows every setting."""

    ok: bool
    reasons: tuple[str, ...]
    status: dict[str, str] = field(default_factory=dict)


class Politeness:
    """Decides, from the volunteer's settings and the machine's state, whether to work now."""

    def __init__(
        self,
        *,
        idle_minutes: float | None = None,
        hours: Hours | None = None,
        pause_on_battery: bool = True,
        threads: int | None = None,
        memory_mb: int | None = None,
        clock: Callable[[], datetime] = datetime.now,
        idle_probe: Callable[[], Idle] = x11_idle,
        power_probe: Callable[[], str] = power_source,
    ) -> None:
        self.idle_minutes = idle_minutes
        self.hours = hours
        self.pause_on_battery = pause_on_battery
        self.threads = threads
        self.memory_mb = memory_mb
        self._clock = clock
        self._idle_probe = idle_probe
        self._power_probe = power_probe

    def check(self) -> Verdict:
        reasons: list[str] = []
        status = {
            "threads": str(self.threads) if self.threads else "all",
            "memory": f"{self.memory_mb} MB" if self.memory_mb else "no cap",
        }
        status["idle"] = self._check_idle(reasons)
        status["hours"] = self._check_hours(reasons)
        status["power"] = self._check_power(reasons)
        return Verdict(not reasons, tuple(reasons), status)

    def _check_idle(self, reasons: list[str]) -> str:
        if not self.idle_minutes:
            return "not required"
        idle = self._idle_probe()
        if idle.seconds is None:
            return f"unknown ({idle.source}); needs {self.idle_minutes:g} min, not enforced"
        minutes = idle.seconds / 60
        text = f"{minutes:.1f} min without input ({idle.source}); needs {self.idle_minutes:g}"
        if minutes < self.idle_minutes:
            reasons.append(
                f"the computer is in use (idle {minutes:.1f} of {self.idle_minutes:g} min)"
            )
        return text

    def _check_hours(self, reasons: list[str]) -> str:
        if self.hours is None:
            return "any time"
        now = self._clock().time()
        inside = self.hours.contains(now)
        if not inside:
            reasons.append(f"outside the set hours {self.hours} (now {now:%H:%M})")
        return f"{self.hours} (now {now:%H:%M}: {'inside' if inside else 'outside'})"

    def _check_power(self, reasons: list[str]) -> str:
        source = self._power_probe()
        if not self.pause_on_battery:
            return f"{source} (battery allowed)"
        if source == "battery":
            reasons.append("running on battery")
        return {"ac": "on mains power", "battery": "on battery: paused"}.get(
            source, "unknown (no battery information)"
        )


def describe(status: dict[str, str]) -> str:
    """One log line listing every setting."""
    return "; ".join(f"{key}: {value}" for key, value in status.items())
