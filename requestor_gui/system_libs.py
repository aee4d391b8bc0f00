"""Before Qt starts: the system libraries PyQt5's X11 plugin needs, named as Debian packages.

PyQt5's wheel brings Qt but not the X11/xcb libraries its ``xcb`` platform plugin links
against; on a fresh Debian desktop some are missing (libxcb-icccm4, libxcb-keysyms1,
libxcb-xinerama0...) and Qt aborts with "could not load the Qt platform plugin xcb". This
module asks ``ldd`` what ``PyQt5/Qt5/plugins/platforms/libqxcb.so`` cannot resolve and maps
each missing library to the package that ships it, without importing Qt.

``python -m requestor_gui.system_libs`` prints the missing packages, one per line (nothing
when all are there); ``scripts/setup.sh`` installs what it prints.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# soname -> Debian (12) package. Everything libqxcb.so and the Qt libraries it loads link to
# that a minimal desktop may lack; an unknown soname is reported by its own name.
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXext.so.6": "libxext6",
    "libXrender.so.1": "libxrender1",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
}

# Platforms that do not load libqxcb.so (QT_QPA_PLATFORM may list several: "wayland;xcb").
NOT_XCB = ("offscreen", "minimal", "wayland", "eglfs", "linuxfb", "vnc")

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


@dataclass(frozen=True)
class Missing:
    """What the xcb plugin cannot load: sonames and the Debian packages that provide them."""

    sonames: list[str]
    packages: list[str]

    def __bool__(self) -> bool:
        return bool(self.sonames)

    def message(self) -> str:
        install = " ".join(self.packages)
        return (
            "daig gui cannot start: Qt's X11 (xcb) platform plugin needs system libraries "
            f"that are not installed ({', '.join(self.sonames)}).\n"
            f"Install them (Debian/Ubuntu): sudo apt-get install {install}\n"
            "(QT_QPA_PLATFORM=wayland uses Wayland instead, where the desktop offers it.)"
        )


def xcb_plugin() -> Path | None:
    """PyQt5's ``libqxcb.so``, found without importing PyQt5 (None: PyQt5 or it is absent)."""
    spec = importlib.util.find_spec("PyQt5")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for qt in ("Qt5", "Qt"):  # "Qt" in PyQt5 wheels before 5.15.4
            plugin = Path(location) / qt / "plugins" / "platforms" / "libqxcb.so"
            if plugin.exists():
                return plugin
    return None


def uses_xcb(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether Qt will load the xcb plugin (Linux, and QT_QPA_PLATFORM unset or xcb first)."""
    if not sys.platform.startswith("linux"):
        return False
    first = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip().lower()
    return not first.startswith(NOT_XCB)


def unresolved(ldd_output: str) -> list[str]:
    """Sonames ``ldd`` printed as ``=> not found``, each once, in order."""
    names: list[str] = []
    for line in ldd_output.splitlines():
        found = _NOT_FOUND.match(line)
        if found and found.group(1) not in names:
            names.append(found.group(1))
    return names


def packages_for(sonames: list[str]) -> list[str]:
    """Debian packages for ``sonames``; an unknown soname stands for itself."""
    packages: list[str] = []
    for soname in sonames:
        package = DEBIAN_PACKAGES.get(soname, soname)
        if package not in packages:
            packages.append(package)
    return packages


def run_ldd(library: Path, ldd: str = "ldd") -> str:
    """``ldd library``'s output ("" when ldd is not there or fails: nothing to report)."""
    command = shutil.which(ldd)
    if command is None:
        return ""
    try:
        done = subprocess.run(
            [command, str(library)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def missing_libraries(plugin: Path | None = None, *, ldd: str = "ldd") -> Missing:
    """What ``plugin`` (default: PyQt5's libqxcb.so) cannot load on this machine."""
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return Missing([], [])
    sonames = unresolved(run_ldd(plugin, ldd))
    return Missing(sonames, packages_for(sonames))


def check_before_qt(environ: dict[str, str] | os._Environ[str] = os.environ) -> Missing:
    """What is missing for the platform Qt is about to use (nothing unless that is xcb)."""
    if not uses_xcb(environ):
        return Missing([], [])
    return missing_libraries()


def main() -> int:
    for package in missing_libraries().packages:
        print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main())
