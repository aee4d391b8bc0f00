"""A project's training time: from its start to its end (or now), its pauses left out."""

from __future__ import annotations

from datetime import UTC, datetime


def training_seconds(
    *,
    started_at: datetime | None,
    finished_at: datetime | None,
    paused_at: datetime | None,
    paused_seconds: float,
    now: datetime | None = None,
) -> float | None:
    """Seconds of training so far; None before the start.

    ``paused_seconds`` are the earlier pauses; ``paused_at`` the start of the current one
    (the clock stands still from then on, also when the project is cancelled while paused).
    """
    if started_at is None:
        return None
    end = finished_at or now or datetime.now(UTC)
    if paused_at is not None:
        end = min(end, paused_at)
    return max(0.0, (end - started_at).total_seconds() - paused_seconds)


def duration_text(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 20 s``, ``45 s``."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
