"""The volunteer's desktop, piece by piece: the suspended status line, the autostart entry's
quoting, the saved login's fallback file, and the background agent's status file."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from provider_agent import saved_login, status_file
from provider_agent.status import AgentStatus
from provider_agent.suspend import SuspendedTooLong, Suspender, suspended_state
from requestor_gui import desktop_entry


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


def test_the_suspended_status_says_why_and_when_it_resumes() -> None:
    assert suspended_state("the computer is in use (idle 0.1 of 5 min)") == (
        "suspended: the computer is in use (idle 0.1 of 5 min); "
        "resumes when the computer is idle again"
    )
    assert suspended_state("running on battery").endswith("on mains power again")
    assert suspended_state("outside the set hours 22:00-07:00 (now 08:00)").endswith(
        "the set hours begin again"
    )


def test_the_suspender_stops_continues_and_gives_up_past_its_limit() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    why: list[str | None] = ["busy"]
    seen: list[str | None] = []
    try:
        suspender = Suspender(lambda: why[0], 0.5, seen.append)
        suspender.begin(child.pid)
        assert suspender.hold() and seen == ["busy"]
        assert _settles(child.pid, lambda state: state == "T"), "stopped"
        why[0] = None
        assert not suspender.hold() and seen == ["busy", None]
        assert _settles(child.pid, lambda state: state != "T"), "continued"
        why[0] = "busy"
        suspender.hold()
        time.sleep(0.6)
        with pytest.raises(SuspendedTooLong, match="giving the task back"):
            suspender.hold()
        assert suspender.suspended_seconds > 0, "the first suspension was counted"
    finally:
        child.send_signal(signal.SIGKILL)  # ends a stopped process too
        assert child.wait(5) == -signal.SIGKILL


def _settles(pid: int, wanted: Callable[[str], bool]) -> bool:
    """Signals are delivered asynchronously: wait (up to 5 s) for the state to be wanted."""
    deadline = time.monotonic() + 5
    while not wanted(_state(pid)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _state(pid: int) -> str:
    stat_line = Path(f"/proc/{pid}/stat").read_text()
    return stat_line[stat_line.rindex(")") + 2]


def test_the_exec_line_survives_spaces_and_percent_signs() -> None:
    argv = ["/opt/my venv/bin/python", "-m", "daig_cli", "100%", 'say "hi"']
    assert desktop_entry.parse_exec(desktop_entry._exec_line(argv)) == argv


def test_without_a_keyring_the_token_goes_to_a_private_file(tmp_path: Path) -> None:
    with pytest.raises(saved_login.NoSavedLogin, match="log in once from the DAIG window"):
        saved_login.load()
    where = saved_login.save(saved_login.SavedLogin("http://h:1", "ann", "tok"))
    path = saved_login.saved_login_file()
    assert where == str(path) and path.is_relative_to(tmp_path / "config")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert saved_login.load() == saved_login.SavedLogin("http://h:1", "ann", "tok")
    path.write_text("{not json")
    with pytest.raises(saved_login.NoSavedLogin, match="unreadable"):
        saved_login.load()
    saved_login.forget()
    assert not path.exists()


def test_the_refresh_token_is_saved_beside_the_token_and_old_files_still_load() -> None:
    login = saved_login.SavedLogin("http://h:1", "ann", "tok", "id.refresh")
    saved_login.save(login)
    path = saved_login.saved_login_file()
    assert json.loads(path.read_text())["refresh_token"] == "id.refresh"
    assert saved_login.load() == login
    # Saved before refresh tokens: a token only, which still starts an agent (for a day).
    path.write_text(json.dumps({"server": "http://h:1", "username": "ann", "token": "old"}))
    assert saved_login.load() == saved_login.SavedLogin("http://h:1", "ann", "old", "")


class MemoryKeyring(KeyringBackend):
    """A usable keyring (priority above zero) that keeps secrets in this process."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.secrets[(service, username)]


def test_with_a_keyring_the_token_stays_out_of_the_file() -> None:
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        where = saved_login.save(saved_login.SavedLogin("http://h:1", "ann", "secret-token"))
        assert where == "the keyring (MemoryKeyring)"
        assert "secret-token" not in saved_login.saved_login_file().read_text()
        assert memory.secrets == {("daig", "ann@http://h:1"): "secret-token"}
        assert saved_login.load().token == "secret-token"
        saved_login.forget()
        assert memory.secrets == {} and not saved_login.saved_login_file().exists()

        saved_login.save(saved_login.SavedLogin("http://h:1", "ann", "tok", "id.refresh"))
        assert "id.refresh" not in saved_login.saved_login_file().read_text()
        assert memory.secrets[("daig", "ann@http://h:1 refresh")] == "id.refresh"
        assert saved_login.load().refresh_token == "id.refresh"
        saved_login.forget()
        assert memory.secrets == {}
    finally:
        keyring.set_keyring(previous)


def test_the_status_file_describes_only_a_live_agent(tmp_path: Path) -> None:
    path = status_file.default_path()
    assert path == tmp_path / "daig" / "provider-status.json"
    status_file.write(path, AgentStatus(state="waiting for tasks", tasks_done=3))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    found = status_file.read()
    assert found is not None and found.pid == os.getpid() and found.status.tasks_done == 3
    status_file.write(path, AgentStatus(state="stopped"))
    assert status_file.read() is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status_file.write(path, AgentStatus(state="training"), pid=dead.pid)
    assert status_file.read() is None, "a dead agent's file is no agent"
