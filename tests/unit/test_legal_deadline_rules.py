"""The legal deadline as the law counts it (CRPA L231-1), on the pure functions of
`assignment.legal_deadline`: every expected date is written out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from assignment.legal_deadline import (
    Period,
    add_months,
    days_kept_at_suspension,
    deadline_after_receipt,
    deadline_after_restart,
    deadline_after_resumption,
    estimated_deadline,
    is_breached,
    last_day,
    warnings_reached,
)

TWO_MONTHS = Period(months=2)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (dt.date(2026, 12, 31), dt.date(2027, 2, 28)),  # February has no 31st: its last day
        (dt.date(2027, 1, 31), dt.date(2027, 3, 31)),
        (dt.date(2027, 12, 30), dt.date(2028, 2, 29)),  # leap year
        (dt.date(2028, 2, 29), dt.date(2028, 4, 29)),
        (dt.date(2027, 1, 10), dt.date(2027, 3, 10)),  # de quantième à quantième
        (dt.date(2027, 11, 15), dt.date(2028, 1, 15)),  # across the year
    ],
)
def test_two_months_run_from_date_to_date_or_to_the_end_of_a_shorter_month(received, due):
    assert last_day(received, TWO_MONTHS) == due


def test_months_are_not_sixty_days():
    """The issue's example: received 31 December, 60 days end 1 March, two months 28 February."""
    assert last_day(dt.date(2026, 12, 31), Period(days=60)) == dt.date(2027, 3, 1)
    assert last_day(dt.date(2026, 12, 31), TWO_MONTHS) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2026, 12, 31), 2) == dt.date(2027, 2, 28)


def test_a_period_in_days_counts_calendar_days():
    assert last_day(dt.date(2027, 3, 1), Period(days=30)) == dt.date(2027, 3, 31)


def test_the_receipt_day_is_the_day_in_paris():
    # 23:30 UTC on 30 November 2026 is 00:30 on 1 December in Paris.
    received_at = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)
    assert deadline_after_receipt(received_at, TWO_MONTHS) == dt.date(2027, 2, 1)
    assert estimated_deadline(received_at) == dt.date(2027, 2, 1)
    # 21:30 UTC on 30 June 2027 is 23:30 in Paris (summer time): still 30 June.
    assert deadline_after_receipt(dt.datetime(2027, 6, 30, 21, 30, tzinfo=dt.UTC), TWO_MONTHS) == (
        dt.date(2027, 8, 30)
    )


def test_a_suspension_across_a_month_end_keeps_the_days_left_and_adds_them_back():
    # Received 10 January 2027: due 10 March. Suspended 25 January: 44 days left
    # (6 in January, 28 in February, 10 in March). Resumed 3 February: 19 March.
    due = last_day(dt.date(2027, 1, 10), TWO_MONTHS)
    assert due == dt.date(2027, 3, 10)
    kept = days_kept_at_suspension(due, dt.date(2027, 1, 25))
    assert kept == 44
    assert deadline_after_resumption(dt.date(2027, 2, 3), kept) == dt.date(2027, 3, 19)


def test_a_suspension_after_the_last_day_keeps_nothing():
    assert days_kept_at_suspension(dt.date(2027, 3, 10), dt.date(2027, 3, 12)) == 0


def test_a_restart_runs_the_whole_period_in_months_from_the_restart_day():
    assert deadline_after_restart(dt.date(2027, 2, 15), TWO_MONTHS) == dt.date(2027, 4, 15)
    assert deadline_after_restart(dt.date(2027, 12, 31), TWO_MONTHS) == dt.date(2028, 2, 29)
    assert deadline_after_restart(dt.date(2027, 2, 15), Period(days=30)) == dt.date(2027, 3, 17)


def test_warnings_at_j15_and_j7_and_the_breach_the_day_after_the_last_day():
    due = dt.date(2027, 2, 28)
    assert warnings_reached(due, dt.date(2027, 2, 12)) == ()
    assert warnings_reached(due, dt.date(2027, 2, 13)) == (15,)
    assert warnings_reached(due, dt.date(2027, 2, 21)) == (15, 7)
    assert not is_breached(due, dt.date(2027, 2, 28))
    assert is_breached(due, dt.date(2027, 3, 1))


def test_a_period_needs_months_or_days():
    assert not Period().declared
    with pytest.raises(ValueError):
        last_day(dt.date(2027, 1, 1), Period())
