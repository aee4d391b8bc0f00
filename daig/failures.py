"""A training failure, told to the requestor without anything from the volunteer's machine.

Providers report ``describe_failure(exc)``: the exception's type and message with traceback
frames, file paths, home directories and environment assignments taken out, on one line and
capped. The full traceback stays in the provider's own log. The aggregator passes whatever
a provider sent through ``sanitize_reason`` again before storing it (a modified agent could
send anything), so the rule lives here, once.
"""

from __future__ import annotations

import re

from daig.contract.http import TaskFailureOut

MAX_REASON_CHARS = 500
PATH = "(path)"  # no angle brackets: Qt labels would take it for HTML

# Lines of a Python traceback, or of the creation trace TensorFlow appends to graph errors.
_FRAME_LINE = re.compile(r'^\s*File "[^"]*", line \d+')
_HEADER_LINE = re.compile(r"^\s*Traceback \(most recent call last\):\s*$")
_TF_DEFINED_AT = re.compile(r"Detected at node \S+(?: defined at \(most recent call last\):)?")
_TF_NOISE = re.compile(r"\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\]")
# file:// URIs, Windows drives and shares, home-relative and absolute POSIX paths. An absolute
# path starts at a word boundary of its own (not inside "a/b" or a TensorFlow node name).
_PATHS = (
    re.compile(r"\bfile://\S+", re.IGNORECASE),
    re.compile(r"\b[A-Za-z]:[\\/][^\s'\"]*"),
    re.compile(r"\\\\[^\s'\"]+"),
    re.compile(r"(?<![\w~])~[\w.-]*(?:/[^\s'\"]*)?"),
    re.compile(r"(?<![\w.:/\\-])/[^\s'\"]+"),
)
_ENVIRONMENT = re.compile(r"\b[A-Z][A-Z0-9_]{2,}=\S+")
_SPACES = re.compile(r"\s+")


def describe_failure(exc: BaseException, *, limit: int = MAX_REASON_CHARS) -> str:
    """What went wrong, for the requestor: ``Type: message``, sanitized."""
    return sanitize_reason(f"{type(exc).__name__}: {exc}", limit=limit)


def sanitize_reason(text: str, *, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` without traceback frames, paths, home directories or environment, on one
    line of at most ``limit`` characters."""
    kept: list[str] = []
    in_frame = False
    for line in text.splitlines():
        if _HEADER_LINE.match(line) or _FRAME_LINE.match(line):
            in_frame = True  # the frame's source line follows, indented
            continue
        if in_frame and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        in_frame = False
        kept.append(line)
    reason = _TF_NOISE.sub(" ", _TF_DEFINED_AT.sub(" ", " ".join(kept)))
    for pattern in _PATHS:
        reason = pattern.sub(PATH, reason)
    reason = _SPACES.sub(" ", _ENVIRONMENT.sub("(environment)", reason)).strip()
    if len(reason) > limit:
        reason = reason[: limit - 1].rstrip() + "…"
    return reason or "unknown error"


def failure_text(failure: TaskFailureOut) -> str:
    """A task failure as the requestor reads it (CLI and GUI): where, how often, why."""
    times = "once" if failure.failures == 1 else f"{failure.failures} times"
    return (
        f"shard {failure.shard} of round {failure.round} failed on a volunteer's machine "
        f"({times} so far; it is retried): {failure.reason}"
    )
