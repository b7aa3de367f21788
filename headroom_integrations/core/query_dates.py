"""The period a query names ("on 1 May 2022", "in mid-August 2023", "last week"), found
without a model, so that search can prefer the memories valid then.

Only explicit periods are read: a day with its month and year, a month with its year
(optionally early / mid / late ...), a year after "in" / "during", and the relative
"today", "yesterday", "this/last week|month|year" against the time of the search. A bare
month ("in May") or weekday is ambiguous and is ignored.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

SLACK = timedelta(days=7)
"""How far outside the named period a memory still counts as in it: people say "last week"
about something a few days off, and a conversation dated one day may tell of the day before."""

_MONTHS = {
    **{calendar.month_name[i].lower(): i for i in range(1, 13)},
    **{calendar.month_abbr[i].lower(): i for i in range(1, 13)},
    "sept": 9,
}

_MON = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_YEAR = r"((?:19|20)\d\d)"
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MON},?\s+{_YEAR}\b", re.I)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MON}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR}\b", re.I)
_PART = r"early|mid|late|beginning of|start of|end of|first half of|second half of|first week of|last week of|last two weeks of"
_MONTH_YEAR = re.compile(rf"\b(?:(?:the\s+)?({_PART})[\s-]+)?{_MON},?\s+{_YEAR}\b", re.I)
_IN_YEAR = re.compile(rf"\b(?:in|during|throughout)\s+{_YEAR}\b", re.I)
_RELATIVE = re.compile(r"\b(today|yesterday|(?:this|last|past)\s+(?:week|month|year))\b", re.I)


@dataclass(frozen=True)
class Period:
    """A half-open span of time ``[start, end)``, in UTC."""

    start: datetime
    end: datetime

    def holds(self, when: datetime, slack: timedelta = SLACK) -> bool:
        """True when ``when`` lies in the period widened by ``slack`` on both sides."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return self.start - slack <= when < self.end + slack


def _day(year: int, month: int, day: int) -> Period | None:
    try:
        start = datetime(year, month, day, tzinfo=timezone.utc)
    except ValueError:
        return None  # "31 February 2023"
    return Period(start, start + timedelta(days=1))


def _part_of_month(year: int, month: int, part: str) -> Period:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    days = calendar.monthrange(year, month)[1]
    first, last = 0, days
    part = " ".join(part.lower().split())
    if part in ("early", "beginning of", "start of", "first half of"):
        last = 15
    elif part == "first week of":
        last = 7
    elif part == "mid":
        first, last = 7, 23
    elif part in ("late", "end of", "second half of", "last two weeks of"):
        first = 14
    elif part == "last week of":
        first = days - 7
    return Period(start + timedelta(days=first), start + timedelta(days=last))


def _relative(word: str, now: datetime) -> Period:
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    word = " ".join(word.lower().split())
    if word == "today":
        return Period(today, today + timedelta(days=1))
    if word == "yesterday":
        return Period(today - timedelta(days=1), today)
    which, unit = word.split()
    if unit == "week":
        monday = today - timedelta(days=today.weekday())
        if which == "this":
            return Period(monday, monday + timedelta(days=7))
        return Period(monday - timedelta(days=7), monday)
    if unit == "month":
        first = today.replace(day=1)
        if which == "this":
            return Period(first, first + timedelta(days=calendar.monthrange(first.year, first.month)[1]))
        prev = (first - timedelta(days=1)).replace(day=1)
        return Period(prev, first)
    first = today.replace(month=1, day=1)
    if which == "this":
        return Period(first, first.replace(year=first.year + 1))
    return Period(first.replace(year=first.year - 1), first)


def query_period(query: str, now: datetime) -> Period | None:
    """The first period ``query`` names, or None. ``now`` anchors "yesterday", "last week"."""
    if not any(ch.isdigit() for ch in query) and _RELATIVE.search(query) is None:
        return None  # no year, no "yesterday": nothing to read
    m = _DAY_MONTH_YEAR.search(query)
    if m:
        return _day(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))
    m = _MONTH_DAY_YEAR.search(query)
    if m:
        return _day(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)))
    m = _MONTH_YEAR.search(query)
    if m:
        return _part_of_month(int(m.group(3)), _MONTHS[m.group(2).lower()], m.group(1) or "")
    m = _IN_YEAR.search(query)
    if m:
        year = int(m.group(1))
        return Period(datetime(year, 1, 1, tzinfo=timezone.utc), datetime(year + 1, 1, 1, tzinfo=timezone.utc))
    m = _RELATIVE.search(query)
    if m:
        return _relative(m.group(1), now)
    return None
