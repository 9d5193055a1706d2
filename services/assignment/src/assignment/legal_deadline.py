"""The legal deadline, counted as the law counts it: pure functions, no I/O.

- A period in months (CRPA L231-1: two months) runs "de quantième à quantième": from the
  receipt day to the same day of the month `months` later; when that month has no such
  day, the period ends on its last day (31 December + 2 months = 28 February, 29 in a
  leap year). A period in days only where the agency's adapter declares days.
- Days are Europe/Paris calendar days: a receipt at 23:30 UTC on 30 November is received
  on 1 December.
- A suspension (a document asked for) keeps the time left in days; the resumption adds
  them back from its own day. A restart (the document asked again) runs the whole period
  again, in months, from the restart day.
- The référent is warned at J-15 and J-7; the deadline is breached the day after the
  last day.

Every date the assignment service computes about a legal period comes from here: the
clock (receipt, resumption, restart), the warnings and the breach, and the views.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from guichet_runtime.clock import paris_day

#: The default period of the CRPA (art. L231-1), shown as an estimate before any receipt.
DEFAULT_MONTHS = 2

#: Days before the last day when the référent is warned, farthest first.
WARNING_DAYS = (15, 7)


@dataclass(frozen=True)
class Period:
    """A legal period as the agency's adapter declares it: months, or else days."""

    months: int | None = None
    days: int | None = None

    @property
    def declared(self) -> bool:
        return self.months is not None or self.days is not None


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later; the month's last day when it has no such day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def last_day(start: dt.date, period: Period) -> dt.date:
    """The last day to answer for a period starting on `start` (receipt or restart day)."""
    if period.months is not None:
        return add_months(start, period.months)
    if period.days is not None:
        return start + dt.timedelta(days=period.days)
    raise ValueError("a legal period needs months or days")


def deadline_after_receipt(received_at: dt.datetime, period: Period) -> dt.date:
    """The last day to answer a request received at the instant `received_at`."""
    return last_day(paris_day(received_at), period)


def estimated_deadline(received_at: dt.datetime) -> dt.date:
    """Before any agency acknowledged receipt: the CRPA's two months from the file's receipt."""
    return deadline_after_receipt(received_at, Period(months=DEFAULT_MONTHS))


def days_left(due_on: dt.date, today: dt.date) -> int:
    """Calendar days from `today` to the last day (0 on the last day, negative after)."""
    return (due_on - today).days


def days_kept_at_suspension(due_on: dt.date, suspended_on: dt.date) -> int:
    """The time left, in days, kept while a document is awaited (never negative)."""
    return max(days_left(due_on, suspended_on), 0)


def deadline_after_resumption(resumed_on: dt.date, days_kept: int) -> dt.date:
    """The document arrived: the days that were left run again from its day."""
    return resumed_on + dt.timedelta(days=days_kept)


def deadline_after_restart(restarted_on: dt.date, period: Period) -> dt.date:
    """The document asked again arrived: the whole period runs again from its day."""
    return last_day(restarted_on, period)


def is_breached(due_on: dt.date, today: dt.date) -> bool:
    """The deadline is breached the day after the last day."""
    return days_left(due_on, today) < 0


def warnings_reached(due_on: dt.date, today: dt.date) -> tuple[int, ...]:
    """The warning thresholds (J-15, J-7) whose day has come, nearest last."""
    left = days_left(due_on, today)
    return tuple(t for t in WARNING_DAYS if left <= t)
