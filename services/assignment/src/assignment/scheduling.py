"""The rules of the appointments a citizen books with their référent: pure functions, no I/O.

- An office's week comes from its published opening hours, in French as the directory
  writes them ("Du lundi au vendredi, 9h-12h30 et 13h30-17h"; several parts separated by
  ";", e.g. "Lundi, 9h-12h ; du mardi au vendredi, 9h-17h"). Hours that cannot be read
  offer no slot (the citizen is told to call their référent), never wrong ones.
- A slot lasts `slot_minutes` and fits wholly in an opening range; it is offered from the
  day after today (Paris calendar) for `horizon_days` days, never on a public holiday of
  metropolitan France nor on a day the référent is absent, never twice.
- The citizen is reminded the day before (from the start of that Paris day), unless they
  booked on that day or later: the confirmation has just told them.
- An absence declared after a booking cancels the référent's appointments on its days that
  have not started yet (`absence_cancels`), telling the citizen why (`absence_reason`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from guichet_runtime.clock import PARIS, paris_day
from guichet_runtime.public_holidays import is_public_holiday
from shared_models.wording import span_fr

#: A slot's length and how far ahead slots are offered (settings APPOINTMENT_*).
DEFAULT_SLOT_MINUTES = 30
DEFAULT_HORIZON_DAYS = 28

DAY_NAMES = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")

#: Each weekday (0 = Monday) -> its opening ranges, in Paris local time.
WeeklyHours = dict[int, tuple[tuple[dt.time, dt.time], ...]]

_TIME = r"(\d{1,2})\s*h\s*(\d{2})?"
_RANGE = re.compile(_TIME + r"\s*[-–à]\s*" + _TIME)
_DAYS = "|".join(DAY_NAMES)
_SPAN = re.compile(rf"^(?:du\s+)?({_DAYS})s?(?:\s+(?:au|à)\s+({_DAYS}))?\s*[,:]?\s*(.*)$")


def _time(hours: str, minutes: str | None) -> dt.time:
    return dt.time(int(hours), int(minutes or 0))


def weekly_hours(text: str) -> WeeklyHours | None:
    """The office's week read from its opening hours in French; None when they cannot be
    read (nothing is guessed)."""
    week: dict[int, list[tuple[dt.time, dt.time]]] = {}
    for part in text.lower().replace("\u202f", " ").split(";"):
        part = part.strip().removeprefix("le ").strip()
        if not part:
            continue
        span = _SPAN.match(part)
        if span is None:
            return None
        first = DAY_NAMES.index(span.group(1))
        last = DAY_NAMES.index(span.group(2)) if span.group(2) else first
        if last < first:
            return None
        try:
            ranges = [(_time(a, b), _time(c, d)) for a, b, c, d in _RANGE.findall(span.group(3))]
        except ValueError:  # 25h, 9h75
            return None
        if not ranges or any(start >= end for start, end in ranges):
            return None
        for day in range(first, last + 1):
            week.setdefault(day, []).extend(ranges)
    if not week:
        return None
    return {day: tuple(sorted(ranges)) for day, ranges in week.items()}


@dataclass(frozen=True, order=True)
class Slot:
    """One bookable time with the référent (aware UTC instants)."""

    starts_at: dt.datetime
    ends_at: dt.datetime


def _local(day: dt.date, at: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=PARIS).astimezone(dt.UTC)


def slots_of_day(hours: WeeklyHours, day: dt.date, slot_minutes: int) -> list[Slot]:
    """Every slot the office's hours hold on `day` (holidays and absences not applied)."""
    length = dt.timedelta(minutes=slot_minutes)
    found: list[Slot] = []
    for start, end in hours.get(day.weekday(), ()):
        at = dt.datetime.combine(day, start)
        while at + length <= dt.datetime.combine(day, end):
            found.append(Slot(_local(day, at.time()), _local(day, (at + length).time())))
            at += length
    return found


def bookable_days(today: dt.date, horizon_days: int) -> Iterator[dt.date]:
    """The days slots are offered on: from tomorrow, `horizon_days` days."""
    for n in range(1, horizon_days + 1):
        yield today + dt.timedelta(days=n)


def free_slots(
    hours: WeeklyHours,
    days: Collection[dt.date],
    slot_minutes: int,
    absent: Collection[dt.date],
    taken: Collection[dt.datetime],
) -> dict[dt.date, list[Slot]]:
    """The free slots of each of `days` (days without any left out): the office's hours,
    minus public holidays, the référent's days of absence and the slots already booked."""
    booked = {t.astimezone(dt.UTC) for t in taken}
    out: dict[dt.date, list[Slot]] = {}
    for day in sorted(days):
        if day in absent or is_public_holiday(day):
            continue
        slots = [s for s in slots_of_day(hours, day, slot_minutes) if s.starts_at not in booked]
        if slots:
            out[day] = slots
    return out


def offered_slot(
    hours: WeeklyHours,
    starts_at: dt.datetime,
    today: dt.date,
    horizon_days: int,
    slot_minutes: int,
    absent: Collection[dt.date],
) -> Slot | None:
    """The slot starting at `starts_at` if one is offered then (already booked or not),
    else None: outside the hours, the window, on a holiday or a day of absence."""
    day = paris_day(starts_at)
    if day not in set(bookable_days(today, horizon_days)):
        return None
    offered = free_slots(hours, [day], slot_minutes, absent, ())
    wanted = starts_at.astimezone(dt.UTC)
    return next((s for s in offered.get(day, []) if s.starts_at == wanted), None)


def reminder_due(starts_at: dt.datetime, booked_at: dt.datetime, now: dt.datetime) -> bool:
    """The citizen is reminded from the start of the Paris day before the appointment until
    it starts, unless they booked on that day or later."""
    eve = paris_day(starts_at) - dt.timedelta(days=1)
    return paris_day(booked_at) < eve <= paris_day(now) and now < starts_at


def absence_cancels(
    starts_at: dt.datetime, starts_on: dt.date, ends_on: dt.date, now: dt.datetime
) -> bool:
    """An absence from `starts_on` to `ends_on` (Paris days, both included) cancels an
    appointment of its agent that falls on one of its days and has not started yet (one
    already begun or past is left as it was)."""
    return starts_on <= paris_day(starts_at) <= ends_on and starts_at > now


def absence_window(starts_on: dt.date, ends_on: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The instants (UTC) an absence spans: from the start of its first Paris day to the
    start of the day after its last (for a query; `absence_cancels` decides)."""
    return (
        _local(starts_on, dt.time()),
        _local(ends_on + dt.timedelta(days=1), dt.time()),
    )


def absence_reason(agent_name: str, starts_on: dt.date, ends_on: dt.date) -> str:
    """What the citizen reads as the reason of an appointment an absence cancelled."""
    return f"{agent_name} sera absent(e) {span_fr(starts_on, ends_on)}."
