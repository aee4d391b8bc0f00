"""Where ``daig`` reads a password, run as a person runs it (subprocesses) against the real
API: a file (``--password-file``), ``DAIG_PASSWORD``, or a hidden prompt; ``--password`` still
works for old scripts but is hidden from the help and warned about (``ps`` shows it)."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.helpers.accounts import PASSWORD
from tests.helpers.cli import run_daig


def _login(api_server, make_user) -> list[str]:
    name = make_user(api_server.url, "cli").me().username
    return ["credits", "balance", "--server", api_server.url, "--user", name]


def _said(result) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def _logged_in(result, config: Path) -> None:
    assert result.returncode == 0, result.stderr
    assert "balance" in result.stdout and "500.00" in result.stdout  # the sign-up grant
    assert (config / "config" / "daig" / "session.json").exists()  # remembered
    assert PASSWORD not in result.stdout + result.stderr


def test_password_from_a_file(api_server, make_user, tmp_path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    _logged_in(
        run_daig(tmp_path, *_login(api_server, make_user), "--password-file", str(secret)),
        tmp_path,
    )
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    refused = run_daig(
        tmp_path / "b", *_login(api_server, make_user), "--password-file", str(wrong)
    )
    assert refused.returncode == 1 and "wrong username or password" in _said(refused)
    empty = tmp_path / "empty"
    empty.write_text("")
    blank = run_daig(tmp_path / "c", *_login(api_server, make_user), "--password-file", str(empty))
    assert blank.returncode == 1 and "the first line is empty" in _said(blank)
    missing = run_daig(
        tmp_path / "d", *_login(api_server, make_user), "--password-file", str(tmp_path / "nope")
    )
    assert missing.returncode == 1 and "cannot read it" in _said(missing)


def test_password_from_the_environment(api_server, make_user, tmp_path) -> None:
    result = run_daig(tmp_path, *_login(api_server, make_user), env={"DAIG_PASSWORD": PASSWORD})
    _logged_in(result, tmp_path)
    assert "Password for" not in result.stderr  # no prompt


def test_password_from_a_hidden_prompt(api_server, make_user, tmp_path) -> None:
    result = run_daig(tmp_path, *_login(api_server, make_user), stdin=PASSWORD + "\n")
    _logged_in(result, tmp_path)
    assert "Password for cli-" in result.stderr
    # The remembered login needs no password next time.
    again = run_daig(tmp_path, "credits", "history")
    assert again.returncode == 0 and "sign-up grant" in again.stdout


def test_the_command_line_password_still_works_with_a_warning_and_is_not_advertised(
    api_server, make_user, tmp_path
) -> None:
    result = run_daig(tmp_path, *_login(api_server, make_user), "--password", PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "--password is deprecated" in _said(result) and "`ps`" in _said(result)
    helps = [
        run_daig(tmp_path, *command, "--help").stdout
        for command in (("credits", "balance"), ("provider",), ("signup",), ("project", "create"))
    ]
    for text in helps:
        assert "--password-file" in text
        assert "--password " not in text and "--password\n" not in text


def test_signup_reads_the_password_the_same_ways(api_server, tmp_path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    name = f"cli-{uuid.uuid4().hex[:8]}"
    args = ["signup", "--server", api_server.url, "--user", name]
    created = run_daig(tmp_path, *args, "--password-file", str(secret))
    assert created.returncode == 0, created.stderr
    again = run_daig(tmp_path, *args, "--exist-ok", stdin=PASSWORD + "\n")
    assert again.returncode == 0 and "already exists" in _said(again)
