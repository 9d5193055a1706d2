"""The answer-time promise made to a citizen who writes to their référent, counted in
working days of the Paris calendar. Pure functions, no I/O.

- A working day is a Monday to Friday that is not a public holiday of metropolitan France
  (the `holidays` package's French calendar: 1 January, Easter Monday, 1 May, 8 May,
  Ascension, Whit Monday, 14 July, 15 August, 1 November, 11 November, 25 December).
- The answer is due by the end (midnight, Paris time) of the `working_days`-th working day
  after the day the message came: a message of Friday afternoon is due by Tuesday evening,
  one of Saturday too, one of 30 April 2026 (Thursday; 1 May is a holiday) by Tuesday 5 May.
- The agent who answers is reminded at the start of that last day; past the end, the
  supervisors are alerted (assignment's housekeeping, from the instants carried by
  `CitizenMessageReceived`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from guichet_runtime.clock import PARIS, paris_day, paris_day_ended_by
from guichet_runtime.public_holidays import is_working_day

#: The promise: an answer within this many working days (setting MESSAGE_ANSWER_WORKING_DAYS).
DEFAULT_WORKING_DAYS = 2


def nth_working_day_after(day: dt.date, n: int) -> dt.date:
    """The `n`-th working day after `day` (`day` itself never counts)."""
    if n < 1:
        raise ValueError("the promise counts at least one working day")
    counted = 0
    while counted < n:
        day += dt.timedelta(days=1)
        counted += is_working_day(day)
    return day


def _paris_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=PARIS).astimezone(dt.UTC)


@dataclass(frozen=True)
class AnswerPromise:
    """When a citizen's message must be answered, and when the answerer is reminded."""

    last_day: dt.date
    remind_at: dt.datetime
    due_at: dt.datetime


def answer_promise(
    received_at: dt.datetime, working_days: int = DEFAULT_WORKING_DAYS
) -> AnswerPromise:
    """The promise of a message received at the instant `received_at`."""
    last_day = nth_working_day_after(paris_day(received_at), working_days)
    return AnswerPromise(
        last_day=last_day,
        remind_at=_paris_midnight(last_day),
        due_at=_paris_midnight(last_day + dt.timedelta(days=1)),
    )


def last_day_of(due_at: dt.datetime | None) -> dt.date | None:
    """The promise's last day (Paris calendar), from its end; none without a promise."""
    if due_at is None:
        return None
    return paris_day_ended_by(due_at)
