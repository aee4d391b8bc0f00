"""Logging setup for every DAIG process: readable lines, or JSON lines when configured.

Every line carries the project, round and task it is about: code that works on one wraps the
work in ``log_context(project=..., round=..., task=...)`` (a context variable, so it follows
threads started with a copied context and asyncio tasks), and ``ContextFilter`` copies the ids
onto each record. JSON lines always have the three keys (null outside any project). ``round``
is given as the 0-based index the wire and database use and shown numbered from 1, as the
GUI and CLI number rounds (log messages that name a round add 1 the same way).

No line shows a URL's query string (``RedactQueries``): presigned blob URLs carry their
signature there, and logs are read by more people than the volunteer. httpx's own request
lines (each URL in full) are not logged at all below WARNING.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType

LOG_IDS = ("project", "round", "task")
_ids: ContextVar[Mapping[str, str]] = ContextVar("daig_log_ids", default=MappingProxyType({}))


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Tag every log line inside the block with these ids (``None`` values are ignored)."""
    unknown = set(ids) - set(LOG_IDS)
    if unknown:
        raise TypeError(f"log_context takes {', '.join(LOG_IDS)}, not {', '.join(unknown)}")
    shown = {k: str(v + 1 if k == "round" and isinstance(v, int) else v) for k, v in ids.items()}
    token = _ids.set({**_ids.get(), **{k: shown[k] for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _ids.reset(token)


def current_ids() -> Mapping[str, str]:
    return _ids.get()


class ContextFilter(logging.Filter):
    """Copies the current project/round/task ids onto each record (and a text suffix)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _ids.get()
        for name in LOG_IDS:
            setattr(record, name, ids.get(name))
        record.ids = "".join(f" {name}={ids[name]}" for name in LOG_IDS if name in ids)
        return True


_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"<>]*)\?[^\s#'\"<>]*", re.IGNORECASE)


def redact_queries(text: str) -> str:
    """``text`` with every URL's query string replaced by ``?<redacted>``."""
    return _QUERY.sub(r"\1?<redacted>", text) if "://" in text else text


class RedactQueries(logging.Filter):
    """Strips URLs' query strings (presigned signatures) from each record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_queries(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str = "daig") -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str | None] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "process": self._process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in LOG_IDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up chatter (CPU features, missing CUDA, oneDNN).

    TensorFlow writes those lines to file descriptor 2 from C++ before its own log level
    applies, so stderr is pointed at /dev/null for the duration of the import only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    logging.getLogger("absl").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def setup_logging(
    level: str = "INFO", *, json_lines: bool | None = None, process: str = "daig"
) -> None:
    """Log to stderr; ``json_lines`` None means as ``DAIG_LOG_JSON`` says (providers, migrate)."""
    if json_lines is None:
        json_lines = os.environ.get("DAIG_LOG_JSON", "").strip().lower() in ("1", "true", "yes")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactQueries())
    if json_lines:
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s%(ids)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO: presigned URLs carry their signature.
    logging.getLogger("httpx").setLevel(logging.WARNING)
