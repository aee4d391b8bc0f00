"""Where a command gets your password: a file, ``DAIG_PASSWORD``, or a hidden prompt.

Never the command line by choice: ``ps`` shows every process's arguments to everyone on the
machine. ``--password`` still works for old scripts, hidden from the help and with a warning.
``password_options`` gives a command a ``--password-file`` option beside its ``password``
argument and hands the command the file's password (or the deprecated option's); the
environment and the prompt are read later, by ``password_for``, only when a login needs them.
``agent_password`` makes the provider's choice between a password and the saved login.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import typer

from daig_cli.output import console, fail

ENV = "DAIG_PASSWORD"
PASSWORD = "password"  # the argument of the decorated command that receives the password
PASSWORD_FILE = "password_file"

PasswordOpt = typer.Option(
    None,
    "--password",
    hidden=True,
    help="Deprecated: other users see it in `ps`. Use --password-file, DAIG_PASSWORD or the "
    "prompt.",
)


def _file_option() -> inspect.Parameter:
    return inspect.Parameter(
        PASSWORD_FILE,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            None,
            "--password-file",
            dir_okay=False,
            help=f"Read your password from this file's first line (else ${ENV}, else a "
            "hidden prompt).",
        ),
        annotation=Path | None,
    )


def read_password_file(path: Path) -> str:
    """The file's first line without its line break; exits with a clear error otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--password-file {path}: cannot read it ({exc})")
    password = text.splitlines()[0] if text else ""
    if not password:
        fail(f"--password-file {path}: the first line is empty; write your password there")
    return password


def given(password: str | None, password_file: Path | None) -> str | None:
    """The password a command line gave: its file's, or the deprecated option's (warned)."""
    if password_file is not None:
        return read_password_file(password_file)
    if password is not None:
        console.print(
            "[yellow]warning:[/] --password is deprecated: other users of this machine can "
            f"read it in `ps`. Use --password-file FILE, {ENV}, or type it at the prompt."
        )
    return password


def password_for(password: str | None, user: str, *, prompt: bool = True) -> str | None:
    """``password`` if given, else ``DAIG_PASSWORD``, else (with ``prompt``) a hidden prompt."""
    if password:
        return password
    if os.environ.get(ENV):
        return os.environ[ENV]
    if not prompt:
        return None
    return str(typer.prompt(f"Password for {user}", hide_input=True, err=True))


def required_password(password: str | None, user: str) -> str:
    """``password_for`` that always answers: the prompt is the last resort."""
    secret = password_for(password, user)
    assert secret is not None  # the prompt always answers
    return secret


def agent_password(
    password: str | None, server: str | None, user: str | None, *, use_saved_login: bool
) -> str | None:
    """The password a provider agent signs in with, or None to start from the saved login.

    A password given (file, deprecated option, ``DAIG_PASSWORD``) wins unless the saved login
    is asked for. With neither, a terminal that names the server and user is asked for one;
    anything else (an autostarted agent, a script) falls back to the saved login.
    """
    if use_saved_login:
        return None
    secret = password_for(password, user or "", prompt=False)
    if not secret and server and user and sys.stdin.isatty():
        secret = required_password(None, user)
    return secret


def password_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with a ``--password-file`` option; its ``password`` argument receives the
    file's password, or the deprecated ``--password`` (with a warning), or None."""
    signature = inspect.signature(command, eval_str=True)
    parameters = [*signature.parameters.values(), _file_option()]

    @functools.wraps(command)
    def with_password(**options: Any) -> None:
        options[PASSWORD] = given(options.get(PASSWORD), options.pop(PASSWORD_FILE))
        command(**options)

    # typer (through inspect.signature) reads this instead of the wrapped function's signature
    cast(Any, with_password).__signature__ = signature.replace(parameters=parameters)
    return with_password
