"""The licensing date rules, pure, each at its boundaries (lifecycle and clock_guard)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from seatgate.clock import add_months
from seatgate.licensing import clock_guard, lifecycle
from seatgate.licensing.tokens import LicenseToken, Price

PURCHASED = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


LIST_PRICE = Price(Decimal("1990.00"), "USD")


def licence(price: Price | None = LIST_PRICE) -> LicenseToken:
    return LicenseToken(
        jti="lic-1",
        kind="license",
        customer="acme",
        issuer="seatgate-vendor",
        installation_id="intranet",
        kid="k1",
        issued_at=PURCHASED,
        edition="bizspace",
        seats=25,
        purchased_at=PURCHASED,
        price=price,
    )


# -- activation: within 6 months of purchase, else automatic at 6 months -----


def test_installed_six_months_minus_a_day_after_purchase_activates_at_install() -> None:
    installed = add_months(PURCHASED, 6) - DAY
    assert lifecycle.activation_time(installed, PURCHASED) == installed


def test_installed_six_months_plus_a_day_after_purchase_counts_as_activated_at_six_months() -> None:
    installed = add_months(PURCHASED, 6) + DAY
    assert lifecycle.activation_time(installed, PURCHASED) == datetime(
        2026, 7, 15, 12, 0, tzinfo=UTC
    )


def test_installed_exactly_at_the_deadline_activates_then() -> None:
    deadline = add_months(PURCHASED, 6)
    assert lifecycle.activation_time(deadline, PURCHASED) == deadline


def test_the_updates_period_is_twelve_months_from_activation() -> None:
    activated = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    assert lifecycle.updates_until(activated, []) == datetime(2027, 2, 1, 8, 0, tzinfo=UTC)


def test_months_are_calendar_months_clamped_at_the_end_of_a_short_month() -> None:
    purchased = datetime(2026, 8, 31, tzinfo=UTC)
    assert lifecycle.activation_time(purchased + timedelta(days=400), purchased) == datetime(
        2027, 2, 28, tzinfo=UTC
    )


# -- renewal quotes: 22 % up to 30 days after the end, 60 % after ------------


END = datetime(2027, 2, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days_after_end", "rate", "amount"),
    [(-100, "0.22", "437.80"), (0, "0.22", "437.80"), (29, "0.22", "437.80"),
     (30, "0.22", "437.80"), (31, "0.60", "1194.00")],
)  # fmt: skip
def test_renewal_rate_by_day_after_the_updates_period(
    days_after_end: int, rate: str, amount: str
) -> None:
    quote = lifecycle.renewal_quote(
        END, Price(Decimal("1990.00"), "USD"), END + days_after_end * DAY
    )
    assert quote.rate == Decimal(rate)
    assert quote.amount == Decimal(amount)
    assert quote.currency == "USD"


def test_the_early_rate_names_the_moment_it_changes_the_late_rate_none() -> None:
    early = lifecycle.renewal_quote(END, None, END + 29 * DAY)
    assert early.rate_changes_at == END + 30 * DAY
    assert early.amount is None and early.currency is None
    late = lifecycle.renewal_quote(END, None, END + 31 * DAY)
    assert late.rate_changes_at is None


def test_the_last_second_of_day_30_is_still_early_and_the_next_is_late() -> None:
    assert lifecycle.renewal_quote(END, None, END + 30 * DAY).rate == Decimal("0.22")
    late = lifecycle.renewal_quote(END, None, END + 30 * DAY + timedelta(seconds=1))
    assert late.rate == Decimal("0.60")


def test_amounts_round_half_up_to_cents() -> None:
    quote = lifecycle.renewal_quote(END, Price(Decimal("10.05"), "EUR"), END)
    assert quote.amount == Decimal("2.21")  # 2.211


# -- renewal coupons ---------------------------------------------------------


def test_a_coupon_applied_early_extends_from_the_old_end() -> None:
    activated = END - timedelta(days=365)
    assert lifecycle.updates_until(activated, [END - 100 * DAY]) == add_months(END, 12)


def test_a_coupon_applied_within_the_30_day_window_extends_from_the_old_end() -> None:
    assert lifecycle.extend(END, END + 30 * DAY) == add_months(END, 12)
    assert lifecycle.extend(END, END + 10 * DAY) == datetime(2028, 2, 1, 8, 0, tzinfo=UTC)


def test_a_coupon_applied_late_extends_from_the_day_it_is_applied() -> None:
    applied = END + 31 * DAY
    assert lifecycle.extend(END, applied) == add_months(applied, 12)
    assert lifecycle.extend(END, applied) == datetime(2028, 3, 4, 8, 0, tzinfo=UTC)


def test_coupons_apply_in_the_order_they_were_applied() -> None:
    activated = END - timedelta(days=365)
    first, second = END - DAY, END + 5 * DAY  # the second is early against the new end
    assert lifecycle.updates_until(activated, [second, first]) == add_months(END, 24)


def test_period_reports_days_left_then_days_since_the_end() -> None:
    activated = add_months(END, -12)
    running = lifecycle.period(licence(), activated, [], END - 10 * DAY - timedelta(hours=1))
    assert running.days_left == 10 and running.days_since_end is None and running.active
    ended = lifecycle.period(licence(), activated, [], END + 29 * DAY)
    assert ended.days_left is None and ended.days_since_end == 29 and not ended.active
    assert ended.quote.rate == Decimal("0.22")


def test_period_lists_the_renewals_it_applied() -> None:
    activated = add_months(END, -12)
    result = lifecycle.period(licence(), activated, [("r2", END + DAY), ("r1", END - DAY)], END)
    assert result.renewals == ("r1", "r2")
    assert result.updates_until == add_months(END, 24)


# -- the clock high-water mark -----------------------------------------------


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_mark_follows_a_clock_that_moves_forward() -> None:
    assert clock_guard.advance(None, None, T0) == T0
    assert clock_guard.advance(T0, T0, T0 + DAY) == T0 + DAY


def test_a_clock_set_back_keeps_the_mark_and_later_time_still_counts() -> None:
    mark = clock_guard.advance(T0, T0, T0 - 2 * DAY)
    assert mark == T0
    # Five more days pass on the set-back clock: the mark moved five days too.
    assert clock_guard.advance(mark, T0 - 2 * DAY, T0 + 3 * DAY) == T0 + 5 * DAY


def test_a_witness_clock_ahead_of_the_host_clock_raises_the_mark() -> None:
    assert clock_guard.advance(T0, T0, T0 - 2 * DAY, witness=T0 + DAY) == T0 + DAY


def test_more_than_a_day_behind_is_reported_less_is_tolerated() -> None:
    assert clock_guard.ClockCheck(T0 - 2 * DAY, T0).set_back
    assert "2 day(s) behind" in (clock_guard.ClockCheck(T0 - 2 * DAY, T0).explain() or "")
    small = clock_guard.ClockCheck(T0 - timedelta(hours=23), T0)
    assert not small.set_back and small.explain() is None
    assert small.trusted_now == T0
