"""The public holidays of metropolitan France, for every count of working days (the answer
promised to a citizen's message, a letter's delivery, the référents' appointment slots):
the `holidays` package's French calendar (1 January, Easter Monday, 1 May, 8 May, Ascension,
Whit Monday, 14 July, 15 August, 1 November, 11 November, 25 December).

`holidays` is imported at the first question, not with the service: it loads every
country's calendars (about 0.2 s of CPU and 9 MB at each start), and most processes never
count a working day (an adapter never does; intake only for a citizen's message)."""

from __future__ import annotations

import datetime as dt
import functools


@functools.cache
def public_holidays(year: int) -> frozenset[dt.date]:
    """Every public holiday of metropolitan France in `year`."""
    import holidays  # noqa: PLC0415  (see the module's docstring)

    return frozenset(holidays.country_holidays("FR", years=year))


def is_public_holiday(day: dt.date) -> bool:
    """`day` is a public holiday of metropolitan France."""
    return day in public_holidays(day.year)


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday, and not a public holiday of metropolitan France."""
    return day.weekday() < 5 and not is_public_holiday(day)
