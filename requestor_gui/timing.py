"""Elapsed time and ETA of a project, from its start time and its rounds' closing times."""

from __future__ import annotations

from datetime import UTC, datetime

from daig.contract.http import ProjectOut, RoundOut
from daig.elapsed import duration_text

RUNNING = {"queued", "running"}


def aware(value: datetime | None) -> datetime | None:
    """An API timestamp as an aware datetime (UTC if it came without an offset), or None."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def elapsed_seconds(project: ProjectOut, now: datetime | None = None) -> float | None:
    """Training time so far (until ``finished_at`` once it ended); None before the start.

    The server's figure leaves pauses out; an older server's is rebuilt from the timestamps.
    """
    if project.elapsed_seconds is not None:
        return project.elapsed_seconds
    started = aware(project.started_at)
    if started is None:
        return None
    end = aware(project.finished_at) or now or datetime.now(UTC)
    return max(0.0, (end - started).total_seconds())


def eta_seconds(
    project: ProjectOut, rounds: list[RoundOut] | None = None, now: datetime | None = None
) -> float | None:
    """Seconds until the last round closes, at the pace of the rounds closed so far.

    ``rounds`` (from ``GET /rounds``) gives the time of the latest close; without it the
    pace is elapsed time over rounds done. None while nothing is known (no round closed yet,
    or the project is not training).
    """
    if project.state not in RUNNING:
        return None
    total, done = project.total_rounds, project.round
    started = aware(project.started_at)
    if not total or not done or started is None:
        return None
    now = now or datetime.now(UTC)
    closed = [t for r in rounds or [] if (t := aware(r.closed_at))]
    last = max(closed) if closed else now
    if project.elapsed_seconds is not None:  # the server's training time: pauses left out
        since_close = min(project.elapsed_seconds, max(0.0, (now - last).total_seconds()))
        pace = (project.elapsed_seconds - since_close) / done
    else:
        pace = max(0.0, (last - started).total_seconds()) / done
    # The round in progress is partly done; the ones after it take a full pace each.
    current = max(0.0, pace - max(0.0, (now - last).total_seconds()))
    return current + pace * max(0, total - done - 1)


def format_duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 20 s``, ``45 s``; an em dash when unknown."""
    return "—" if seconds is None else duration_text(seconds)
