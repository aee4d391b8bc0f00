"""Pure arithmetic of the black-hole check: task messages each account took over a window,
against the claims it made (or tried to make) for them.

RabbitMQ's management API gives every channel's cumulative count of messages it took (acked,
or delivered without ack). ``ConsumptionWindow`` keeps each channel's previous count, turns a
new sample into what each account took since the previous one, and sums those increments over
the last ``window_seconds``. ``verdict`` then compares that with the account's attempts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from daig.settings import Settings

# RabbitMQ refreshes channel counters every collect_statistics_interval (5 s by default), so a
# sample counts messages taken up to that long before it was read: attempts are counted from
# that much earlier, never to the honest agent's cost.
STATS_LAG_SECONDS = 5.0


@dataclass(frozen=True)
class BlackHolePolicy:
    """When an account counts as a black hole (``DAIG_BLACK_HOLE_*``)."""

    min_messages: int
    claim_fraction: float
    window_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> BlackHolePolicy:
        return cls(
            min_messages=settings.black_hole_min_messages,
            claim_fraction=settings.black_hole_claim_fraction,
            window_seconds=settings.black_hole_window_seconds,
        )


@dataclass(frozen=True)
class ChannelCount:
    """One channel of a provider account, and the messages it took since it opened."""

    channel: str
    provider_id: int
    taken: int


@dataclass(frozen=True)
class Intake:
    """What an account's channels took between two samples (seconds since the epoch)."""

    since: float
    at: float
    taken: int


@dataclass(frozen=True)
class Taken:
    """What an account took within the window, and from when its attempts must be counted."""

    provider_id: int
    messages: int
    since: float  # the earliest moment those messages may have been taken
    seconds: float  # the span the messages were taken over, for people


class ConsumptionWindow:
    """Messages taken per account over the last ``window_seconds``, sample by sample.

    The first sample is only a baseline: a channel open before the check started may have
    taken its messages long ago. After it, a channel not seen before counts from zero (it
    opened since the previous sample, with counters at zero).
    """

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._previous: dict[str, int] | None = None  # channel -> its count at the last sample
        self._last_at: float | None = None
        self._intakes: dict[int, deque[Intake]] = {}

    def observe(self, at: float, channels: Iterable[ChannelCount]) -> None:
        """Take a sample read at ``at`` (seconds since the epoch)."""
        counts = list(channels)
        if self._previous is not None and self._last_at is not None:
            per_account: dict[int, int] = {}
            for count in counts:
                # A counter below the last sample: another channel reused the name; from zero.
                before = self._previous.get(count.channel, 0)
                grown = count.taken - before if count.taken >= before else count.taken
                per_account[count.provider_id] = per_account.get(count.provider_id, 0) + grown
            for provider_id, taken in per_account.items():
                if taken > 0:
                    intake = Intake(self._last_at, at, taken)
                    self._intakes.setdefault(provider_id, deque()).append(intake)
        self._previous = {count.channel: count.taken for count in counts}
        self._last_at = at
        self._drop_older_than(at - self._window)

    def taken(self, provider_id: int) -> Taken | None:
        """What the account took within the window (None: nothing)."""
        intakes = list(self._intakes.get(provider_id, ()))  # a copy: read from other threads
        if not intakes:
            return None
        since = intakes[0].since
        return Taken(
            provider_id=provider_id,
            messages=sum(intake.taken for intake in intakes),
            since=since - STATS_LAG_SECONDS,
            seconds=intakes[-1].at - since,
        )

    def over(self, min_messages: int) -> list[Taken]:
        """Accounts that took at least ``min_messages`` within the window."""
        found = [self.taken(provider_id) for provider_id in sorted(self._intakes)]
        return [taken for taken in found if taken is not None and taken.messages >= min_messages]

    def forget(self, provider_id: int) -> None:
        """Start the account afresh (once it is dealt with)."""
        self._intakes.pop(provider_id, None)

    def _drop_older_than(self, start: float) -> None:
        for provider_id in list(self._intakes):
            intakes = self._intakes[provider_id]
            while intakes and intakes[0].at <= start:
                intakes.popleft()
            if not intakes:
                del self._intakes[provider_id]


def is_black_hole(messages: int, attempts: int, policy: BlackHolePolicy) -> bool:
    """Took enough messages to judge, and tried to claim fewer than the fraction of them."""
    return messages >= policy.min_messages and attempts < policy.claim_fraction * messages


def reason(taken: Taken, claimed: int, refused: int) -> str:
    """Why the account is quarantined, for the volunteer and the operator."""
    took = f"its agent took {taken.messages} task messages in {max(taken.seconds, 1):.0f} s"
    if claimed == 0 and refused == 0:
        return f"{took} and claimed none"
    return f"{took} and tried to claim only {claimed + refused} of them"
