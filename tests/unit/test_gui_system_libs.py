"""The GUI's check for the X11 libraries Qt's xcb plugin needs, before Qt starts (issue 15).

Controlled: a fake ``ldd`` (a script printing what real ldd prints when libraries are missing)
on the PATH, as a fresh Debian desktop would answer. Real: ``ldd`` on PyQt5's own libqxcb.so
here, cross-checked library by library with the dynamic loader (ctypes).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from requestor_gui.system_libs import (
    DEBIAN_PACKAGES,
    missing_libraries,
    packages_for,
    run_ldd,
    unresolved,
    uses_xcb,
    xcb_plugin,
)

# What ldd printed for libqxcb.so on a Debian 12 desktop without the three xcb util packages.
FRESH_DEBIAN_LDD = """\
\tlinux-vdso.so.1 (0x00007ffd5e9f2000)
\tlibQt5XcbQpa.so.5 => /venv/PyQt5/Qt5/plugins/platforms/../../lib/libQt5XcbQpa.so.5 (0x7f1)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f8c3a5e3000)
\tlibxcb-xinerama.so.0 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibfancy-new.so.3 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f8c3b0a9000)
"""


def _fake_ldd(directory: Path, output: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "ldd"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + output + "EOF\n")
    script.chmod(0o755)
    return script


def test_unresolved_sonames_are_read_from_ldd_once_each_in_order() -> None:
    assert unresolved(FRESH_DEBIAN_LDD) == [
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
        "libxcb-xinerama.so.0",
        "libxkbcommon-x11.so.0",
        "libfancy-new.so.3",
    ]
    assert unresolved("\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x1)\n") == []


def test_sonames_map_to_debian_packages_and_unknown_ones_stand_for_themselves() -> None:
    assert packages_for(unresolved(FRESH_DEBIAN_LDD)) == [
        "libxcb-icccm4",
        "libxcb-keysyms1",
        "libxcb-xinerama0",
        "libxkbcommon-x11-0",
        "libfancy-new.so.3",
    ]
    # two sonames of one package name it once
    assert packages_for(["libglib-2.0.so.0", "libgthread-2.0.so.0"]) == ["libglib2.0-0"]


def test_missing_libraries_asks_the_ldd_it_is_given(tmp_path: Path) -> None:
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"\x7fELF")
    ldd = _fake_ldd(tmp_path / "bin", FRESH_DEBIAN_LDD)
    missing = missing_libraries(plugin, ldd=str(ldd))
    assert missing and "libxcb-icccm4" in missing.packages
    message = missing.message()
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0" in message
    # all resolved: nothing to say; no ldd at all: nothing to say either
    assert not missing_libraries(plugin, ldd=str(_fake_ldd(tmp_path / "ok", "\tlibc.so.6 => /x\n")))
    assert not missing_libraries(plugin, ldd=str(tmp_path / "no-such-ldd"))


@pytest.mark.parametrize(
    ("platform", "xcb"),
    [
        (None, True),
        ("xcb", True),
        ("offscreen", False),
        ("minimal", False),
        ("wayland", False),
        ("wayland-egl", False),
        ("wayland;xcb", False),
        ("xcb;wayland", True),
        ("vnc:size=800x600", False),
    ],
)
def test_the_check_applies_to_the_xcb_platform_only(platform: str | None, xcb: bool) -> None:
    environ = {} if platform is None else {"QT_QPA_PLATFORM": platform}
    assert uses_xcb(environ) is xcb


def _system_sonames(ldd_output: str) -> list[str]:
    """The libraries ldd lists (found or not) that we map to a Debian package."""
    names = [line.split("=>")[0].strip() for line in ldd_output.splitlines() if "=>" in line]
    return [name for name in dict.fromkeys(names) if name in DEBIAN_PACKAGES]


def test_real_detection_on_this_machines_libqxcb_agrees_with_the_dynamic_loader() -> None:
    plugin = xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so", "PyQt5's xcb plugin not found"
    output = run_ldd(plugin)
    assert "libxcb.so.1" in output, output  # ldd really ran on the real plugin
    checked = _system_sonames(output)
    assert len(checked) >= 5, output
    missing = missing_libraries()
    for soname in checked:
        try:
            ctypes.CDLL(soname)
            loads = True
        except OSError:
            loads = False
        assert loads is (soname not in missing.sonames), (soname, missing)
    # every library missing here has its Debian package in the table
    assert all(name in DEBIAN_PACKAGES for name in missing.sonames), missing.sonames


def _gui_command(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    """``daig gui`` in a child on the xcb platform; it prints whether Qt got imported."""
    script = (
        "import sys\n"
        "from daig_cli import app\n"
        "try:\n"
        "    app(['gui'], prog_name='daig')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "qt = sorted(m for m in sys.modules if m.startswith('PyQt5.'))\n"
        "print('qt modules:', qt)\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env |= {"PATH": path, "DISPLAY": ":99", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )


def test_daig_gui_names_the_packages_and_exits_before_importing_qt(tmp_path: Path) -> None:
    fake = _fake_ldd(tmp_path / "bin", FRESH_DEBIAN_LDD)
    done = _gui_command(tmp_path, f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert done.returncode != 0, done
    assert "qt modules: []" in done.stdout, done.stdout
    for package in ("libxcb-icccm4", "libxcb-keysyms1", "libxcb-xinerama0", "libxkbcommon-x11-0"):
        assert package in done.stderr, done.stderr
    assert "could not load the Qt platform plugin" not in done.stderr


def test_daig_gui_names_what_is_really_missing_on_this_machine(tmp_path: Path) -> None:
    missing = missing_libraries()
    if not missing:
        pytest.skip("every library libqxcb.so needs is installed here: Qt would really start")
    done = _gui_command(tmp_path, os.environ["PATH"])
    assert done.returncode != 0 and "qt modules: []" in done.stdout, done
    assert "apt-get install " + " ".join(missing.packages) in done.stderr, done.stderr
