"""The date every service sees: the real one in Paris, or a rehearsal date.

When the `CLOCK_FILE` setting names a file holding an ISO date, that date is "today" for
every process reading it, re-read at each call: a test or a rehearsal moves time for
running processes by rewriting one file. Only calendar days move; the time of day stays
the real one, so durations measured inside one process are untouched.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def paris_day(moment: dt.datetime) -> dt.date:
    """The calendar day of `moment` in Paris (legal periods count French calendar days)."""
    return moment.astimezone(PARIS).date()


def paris_day_ended_by(end: dt.datetime) -> dt.date:
    """The last Paris day of a period ending at the instant `end` (midnight ends the day
    before): the day a citizen is told as "au plus tard le …"."""
    return paris_day(end - dt.timedelta(microseconds=1))


class Clock:
    """Today in Paris; from `override_file` (an ISO date in a file) when set and not empty."""

    def __init__(self, override_file: Path | None = None) -> None:
        self.override_file = override_file

    def _override(self) -> dt.date | None:
        if self.override_file is None or not self.override_file.exists():
            return None
        text = self.override_file.read_text(encoding="utf-8").strip()
        return dt.date.fromisoformat(text) if text else None

    def today(self) -> dt.date:
        return self._override() or dt.datetime.now(PARIS).date()

    def now(self) -> dt.datetime:
        """Now (UTC), on the rehearsal date when one is set: its Paris day is `today()`."""
        return now_on(self._override())


def now_on(day: dt.date | None = None) -> dt.datetime:
    """Now (UTC); on `day` when given, at the time of day it is in Paris (a rehearsal date
    moves the day, not the time of day)."""
    real = dt.datetime.now(PARIS)
    if day is None:
        return real.astimezone(dt.UTC)
    # Combined in Paris local time, so a DST change between the two dates cannot move the
    # instant across midnight.
    return dt.datetime.combine(day, real.time(), tzinfo=PARIS).astimezone(dt.UTC)
