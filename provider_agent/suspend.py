"""Suspend, don't discard: freeze the training child while the volunteer needs the machine.

When a polite-volunteering condition stops holding in the middle of a task (the volunteer
touches the mouse, the set hours end, the laptop goes on battery), the child gets SIGSTOP
instead of being killed, so a task that was 94% done is not thrown away; SIGCONT resumes it
when every condition holds again. The agent keeps renewing the lease meanwhile, but only for
``limit_seconds`` (``AgentConfig.suspend_minutes``): past that the task is given back so it
does not hold up the requestor's round. Stop kills the child directly (SIGKILL ends a stopped
process too), so it stays instant.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# What the volunteer reads after "resumes when": keyed by a word of politeness.py's reasons.
_RESUMES_WHEN = (
    ("in use", "the computer is idle again"),
    ("hours", "the set hours begin again"),
    ("battery", "the computer is on mains power again"),
)


class SuspendedTooLong(Exception):
    """The task stayed suspended past the limit: it is given back."""


def suspended_state(reason: str) -> str:
    """The status line while suspended, e.g. ``suspended: the computer is in use (...);
    resumes when the computer is idle again``."""
    when = next((text for word, text in _RESUMES_WHEN if word in reason), None)
    return f"suspended: {reason}; resumes when {when or 'every condition holds again'}"


class Suspender:
    """Stops and continues one training process as ``reason()`` says.

    ``reason()`` returns why work must not run now (None: it may). ``on_change`` is told the
    reason when the child is stopped and None when it runs again.
    """

    def __init__(
        self,
        reason: Callable[[], str | None],
        limit_seconds: float,
        on_change: Callable[[str | None], None] = lambda _: None,
    ) -> None:
        self._reason = reason
        self._limit = limit_seconds
        self._on_change = on_change
        self._pid: int | None = None
        self._since: float | None = None  # monotonic time the child was stopped
        self.suspended_seconds = 0.0  # total over the current task

    @property
    def suspended(self) -> bool:
        return self._since is not None

    def begin(self, pid: int | None) -> None:
        """A new task starts on ``pid``."""
        self._pid, self._since, self.suspended_seconds = pid, None, 0.0

    def hold(self) -> bool:
        """Stop or continue the child as needed; True while it is stopped.

        Raises ``SuspendedTooLong`` (with the child still stopped: the caller kills it) once
        it has been stopped for longer than the limit.
        """
        why = self._reason()
        if why is not None and self._since is None:
            self._signal(signal.SIGSTOP)
            self._since = time.monotonic()
            log.info("training suspended: %s", why)
            self._on_change(why)
        elif why is None and self._since is not None:
            self._signal(signal.SIGCONT)
            self.suspended_seconds += time.monotonic() - self._since
            self._since = None
            log.info("training resumed: every condition holds again")
            self._on_change(None)
        if self._since is not None and time.monotonic() - self._since > self._limit:
            raise SuspendedTooLong(
                f"suspended for more than {self._limit / 60:g} min; giving the task back"
            )
        return self._since is not None

    def forget(self) -> None:
        """The child is about to be killed: count the time, send it nothing more."""
        if self._since is not None:
            self.suspended_seconds += time.monotonic() - self._since
        self._pid, self._since = None, None

    def _signal(self, signum: int) -> None:
        if self._pid is None:
            return
        with contextlib.suppress(ProcessLookupError):  # it died: the trainer reports that
            os.kill(self._pid, signum)
