"""How ``daig`` commands take a password, in process (typer's runner) and without a server:
the help offers ``--password-file`` and hides ``--password``, a file's first line is the
password, a bad file is a clear error, the deprecated option warns, and with nothing given the
command asks at a prompt. Against a real API: tests/integration/test_cli_passwords.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from daig_cli import app, passwords
from daig_cli.passwords import agent_password, given, password_for, read_password_file

NOWHERE = "http://127.0.0.1:1"  # nothing listens: the command fails after reading a password


def _run(*args: str, stdin: str | None = None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", "DAIG_PASSWORD": None})
    return runner.invoke(app, list(args), input=stdin)


@pytest.mark.parametrize(
    "command",
    [
        ("signup",),
        ("provider",),
        ("credits", "balance"),
        ("project", "create"),
        ("project", "pause"),
    ],
)
def test_help_offers_a_password_file_and_hides_the_command_line_password(command) -> None:
    text = _run(*command, "--help").output
    assert "--password-file" in text
    assert "--password " not in text and "--password\n" not in text


def test_a_password_file_gives_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("correct horse\r\nsecond line\n")
    assert read_password_file(path) == "correct horse"
    assert given(None, path) == "correct horse"


def test_an_empty_or_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    refused = _run("signup", "--server", NOWHERE, "--user", "u", "--password-file", str(empty))
    assert refused.exit_code == 1 and "the first line is empty" in refused.output
    missing = tmp_path / "missing"
    refused = _run("signup", "--server", NOWHERE, "--user", "u", "--password-file", str(missing))
    assert refused.exit_code == 1 and "cannot read it" in refused.output


def test_the_environment_comes_before_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAIG_PASSWORD", "from-env")
    assert password_for(None, "u") == "from-env"
    assert password_for("given", "u") == "given"
    monkeypatch.delenv("DAIG_PASSWORD")
    assert password_for(None, "u", prompt=False) is None


def test_with_nothing_given_the_command_asks_at_a_hidden_prompt() -> None:
    result = _run("signup", "--server", NOWHERE, "--user", "u", stdin="typed-secret\n")
    assert "Password for u:" in result.output
    assert "typed-secret" not in result.output  # not echoed
    assert result.exit_code == 1 and "cannot reach the DAIG server" in result.output


def test_the_command_line_password_still_works_with_a_warning() -> None:
    result = _run("signup", "--server", NOWHERE, "--user", "u", "--password", "old-script")
    assert "--password is deprecated" in result.output
    assert "Password for" not in result.output  # no prompt: the option was the password
    assert result.exit_code == 1 and "cannot reach the DAIG server" in result.output


def test_a_provider_agent_takes_a_password_else_the_saved_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DAIG_PASSWORD", raising=False)
    monkeypatch.setattr(passwords.sys.stdin, "isatty", lambda: False)
    assert agent_password("given", NOWHERE, "u", use_saved_login=False) == "given"
    assert agent_password("given", NOWHERE, "u", use_saved_login=True) is None
    # No terminal to ask at (autostart, a script): the saved login.
    assert agent_password(None, NOWHERE, "u", use_saved_login=False) is None
    monkeypatch.setenv("DAIG_PASSWORD", "from-env")
    assert agent_password(None, NOWHERE, "u", use_saved_login=False) == "from-env"


def test_a_provider_agent_at_a_terminal_asks_only_when_server_and_user_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DAIG_PASSWORD", raising=False)
    monkeypatch.setattr(passwords.sys.stdin, "isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr(passwords.typer, "prompt", lambda text, **_: asked.append(text) or "typed")
    assert agent_password(None, NOWHERE, "u", use_saved_login=False) == "typed"
    assert asked == ["Password for u"]
    assert agent_password(None, None, "u", use_saved_login=False) is None
    assert agent_password(None, NOWHERE, None, use_saved_login=False) is None
    assert asked == ["Password for u"]  # asked once, for the named user only
