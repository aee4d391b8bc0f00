"""Turning any exception into a sentence for a person: the GUI never shows a traceback."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from daig.client import ClientError
from daig.hyperparams import KNOBS

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The person cancelled the operation (an upload or a download)."""


def sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?)" else text + "."


def describe(exc: BaseException) -> str:
    """A readable message for ``exc``; unexpected errors are logged with their traceback."""
    if isinstance(exc, ClientError):
        return _client_error(exc)
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        text = "; ".join(_field_problem(e) for e in errors)
        # a field's name keeps its spelling; a rule across fields is a sentence of its own
        return full_stop(text) if errors and errors[0]["loc"] else sentence(text)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return sentence(f"{exc.strerror}{where}")
    if isinstance(exc, ValueError):  # FileRejected, ArrayRejected, ModelRejected, ...
        return sentence(str(exc))
    log.error("unexpected error", exc_info=exc)
    return sentence(f"Something went wrong: {type(exc).__name__}: {exc}")


def _client_error(exc: ClientError) -> str:
    if exc.status is None:
        cause = exc.__cause__
        why = f" ({_short(cause)})" if cause else ""
        server = str(exc).removeprefix("cannot reach the DAIG server at ").split(" (")[0]
        return (
            f"Cannot reach the DAIG server at {server}{why}. Check the address and that "
            "the server is running."
        )
    if exc.status == 401 and exc.reason == "bad_credentials":
        return "Wrong username or password."
    if exc.status == 401:
        return "Your session has expired; log in again."
    if exc.status >= 500:
        return sentence(f"The server had a problem: {exc}")
    if exc.status == 422:  # "epochs: must be between 1 and 1000 (got 0)": keep the field's name
        return full_stop(str(exc))
    return sentence(str(exc))


def full_stop(text: str) -> str:
    """``text`` ending in a full stop, its first letter as it was (a field's name)."""
    text = text.strip()
    return text if not text or text[-1] in ".!?)" else text + "."


def _field_problem(error: ErrorDetails) -> str:
    """One validation error naming its field: "epochs: must be between 1 and 1000 (got 0)"."""
    field = ".".join(str(part) for part in error["loc"])
    if field in KNOBS:
        return f"{field}: {KNOBS[field].requirement(error['input'])}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


def _short(cause: BaseException) -> str:
    text = str(cause) or type(cause).__name__
    # httpx wraps socket errors as "[Errno 111] Connection refused"; keep the words.
    return text.split("] ", 1)[-1].lower() if text.startswith("[Errno") else text
