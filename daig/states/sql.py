"""The tables as SQL: state lists and predicates for statements written as text.

Set-wise and raw-cursor statements (claims, dispatch, the aggregator's batches) stay plain SQL
text, as fast as ever, but take their state values and their live-lease predicates from here,
so the rules they apply are the tables'.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_

from daig.db.models import Claim
from daig.states.table import HOLDING

# On a task row (its lease is the latest of its live claims'): whether a live claim holds it.
HELD = "lease_expires_at > now()"
UNHELD = "(lease_expires_at IS NULL OR lease_expires_at <= now())"


def literal(state: StrEnum) -> str:
    """A state as an SQL string literal (state values are plain lower-case words)."""
    assert state.value.replace("_", "").isalpha(), state
    return f"'{state.value}'"


def state_in(states: Iterable[StrEnum], column: str = "state", *, negate: bool = False) -> str:
    """``column`` is (or, negated, is not) one of ``states``: ``state = 'pending'``, ..."""
    values = [literal(state) for state in states]
    assert values, "no states"
    if len(values) == 1:
        return f"{column} {'<>' if negate else '='} {values[0]}"
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join(values)})"


def live_claim_sql(alias: str = "", now: str = "now()") -> str:
    """A claims row is live: it holds its task until its lease lapses."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}state = {literal(HOLDING)} AND {prefix}lease_expires_at > {now}"


def live_claim(now: datetime) -> ColumnElement[bool]:
    """``live_claim_sql`` for SQLAlchemy statements on ``Claim``."""
    return and_(Claim.state == HOLDING, Claim.lease_expires_at > now)
