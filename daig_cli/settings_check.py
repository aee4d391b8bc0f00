"""Refuse to start a server role on settings that cannot work, saying which variable is wrong."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import ValidationError

from daig.settings import Settings
from daig_cli.output import fail


def settings_problems() -> list[str]:
    """What is wrong with the ``DAIG_*`` settings, one line per problem (empty: none)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = "_".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"DAIG_{where}: {message}" if where else message)
        return problems
    if urlsplit(settings.blob_url).scheme not in ("file", "s3"):
        return [f"DAIG_BLOB_URL {settings.blob_url!r}: use file:///dir or s3://bucket/prefix"]
    return []


def require_valid_settings(code: int = 1) -> None:
    problems = settings_problems()
    if problems:
        fail("cannot start with these settings:\n  " + "\n  ".join(problems), code)
