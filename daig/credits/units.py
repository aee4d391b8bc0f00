"""The credit people read, and the exact unit the ledger counts in.

The ledger posts whole *work units*: one sample x epoch x model parameter, the work a task
asks for (``pricing``). People see **credits**: one credit is ``UNITS_PER_CREDIT`` work
units, a million sample-epoch-parameters: one epoch of one sample through a
one-million-parameter model (about six million floating-point operations of training). A
digits task of the demo (120 rows, 5 epochs, a 4,810-parameter MLP) is worth 2.886 credits.
A work unit is a micro-credit, so the ledger stays exact and the API answers credits with up to
six decimals.
"""

from __future__ import annotations

UNITS_PER_CREDIT = 1_000_000
DECIMALS = 6  # a work unit is 10^-6 credit: every ledger amount is exact at six decimals
UNIT_TEXT = "1 credit = 10^6 samples x epochs x model parameters"


def to_credits(units: int) -> float:
    """Work units as credits (exact to six decimals)."""
    return round(units / UNITS_PER_CREDIT, DECIMALS)


def maybe_credits(units: int | None) -> float | None:
    return None if units is None else to_credits(units)


def to_units(credits: float) -> int:
    """Credits as whole work units (a fraction of a unit rounds to the nearest)."""
    return round(credits * UNITS_PER_CREDIT)


def credits_text(credits: float, *, signed: bool = False) -> str:
    """Credits for people: two decimals with thousands separators, more for a non-zero
    amount that two decimals would show as 0.00."""
    sign = "+" if signed else ""
    if credits and abs(credits) < 0.005:
        return f"{credits:{sign}.6f}".rstrip("0")
    return f"{credits:{sign},.2f}"


def units_text(units: int, *, signed: bool = False) -> str:
    return credits_text(to_credits(units), signed=signed)
