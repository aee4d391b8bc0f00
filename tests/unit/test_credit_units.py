"""Credits as people read them: the unit, its conversions and text, and the sign-up grant
setting (in credits; an old value in work units is refused with the fix). The grant against
the demo project's estimate through the real API: tests/integration/test_credit_unit.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from daig.credits.pricing import task_cost
from daig.credits.units import (
    UNITS_PER_CREDIT,
    credits_text,
    to_credits,
    to_units,
    units_text,
)
from daig.settings import Settings


def test_a_credit_is_a_million_sample_epoch_parameters() -> None:
    assert UNITS_PER_CREDIT == 10**6
    digits_task = task_cost(samples=120, epochs=5, parameters=4810)  # one demo task
    assert digits_task == 2_886_000
    assert to_credits(digits_task) == 2.886
    assert units_text(digits_task) == "2.89"


def test_conversions_are_exact_to_the_work_unit() -> None:
    for units in (0, 1, 999_999, 2_886_000, 123_456_789_012, 10**15, -2_886_001):
        assert to_units(to_credits(units)) == units
    assert to_units(500) == 500_000_000


def test_credit_text_is_readable() -> None:
    assert credits_text(500) == "500.00"
    assert credits_text(1234567.891) == "1,234,567.89"
    assert credits_text(2.886, signed=True) == "+2.89"
    assert credits_text(-114.05, signed=True) == "-114.05"
    # A tiny non-zero amount is not shown as 0.00.
    assert credits_text(0.000042) == "0.000042"
    assert credits_text(0) == "0.00"


def test_the_grant_is_in_credits_and_an_old_unit_value_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DAIG_CREDIT_SIGNUP_GRANT", raising=False)
    assert Settings().credit_signup_grant == 500
    monkeypatch.setenv("DAIG_CREDIT_SIGNUP_GRANT", "750")
    assert Settings().credit_signup_grant == 750
    monkeypatch.setenv("DAIG_CREDIT_SIGNUP_GRANT", "1000000000000")  # the old default
    with pytest.raises(ValidationError, match="divide an old value by 1,000,000"):
        Settings()
