"""The loose dates of the Blueprint data: sources often give a month, a quarter or 'mid-2024'.

Accepted forms (anything else is a data error): ``2018``, ``2018-07``, ``2018-07-24``,
``2020-Q4``, ``2024-early|mid|late``, ``2020/21`` or ``2024-25`` (financial year from April),
and the undated words ``undated``, ``undated (August)``, ``future``, ``later``. Each form has a
sort key (its first day; ``None`` when undated) and is shown in English or Chinese.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

_RE = re.compile(
    r"^(?P<y>\d{4})(?:"
    r"-(?P<m>\d{2})(?:-(?P<d>\d{2}))?"
    r"|-Q(?P<q>[1-4])"
    r"|-(?P<part>early|mid|late)"
    r"|/(?P<fy>\d{2})"
    r")?$"
)
_UNDATED = re.compile(r"^(?P<word>undated|future|later)(?: \((?P<hint>[^()]{1,40})\))?$")
_PART_MONTH = {"early": 1, "mid": 7, "late": 10}
_PART_ZH = {"early": "初", "mid": "年中", "late": "底"}
_UNDATED_ZH = {"undated": "未註明日期", "future": "日後", "later": "其後"}
_MONTHS_ZH = {
    "January": "1月",
    "February": "2月",
    "March": "3月",
    "April": "4月",
    "May": "5月",
    "June": "6月",
    "July": "7月",
    "August": "8月",
    "September": "9月",
    "October": "10月",
    "November": "11月",
    "December": "12月",
}


@dataclass(frozen=True, slots=True)
class LooseDate:
    raw: str
    start: date | None  # first day the text can mean; None for undated / future / later
    precision: str  # day | month | quarter | part | fiscal | year | undated

    @property
    def year(self) -> int | None:
        return self.start.year if self.start else None

    @property
    def end(self) -> date | None:
        """Last day the text can mean: '2024' ends on 31 Dec, '2024-Q2' on 30 Jun."""
        s = self.start
        if s is None:
            return None
        match self.precision:
            case "day":
                return s
            case "month":
                return _month_end(s.year, s.month)
            case "quarter":
                return _month_end(s.year, s.month + 2)
            case "part":  # early = Jan-Apr, mid = May-Aug (from Jul), late = Sep-Dec (from Oct)
                return _month_end(s.year, {1: 4, 7: 8, 10: 12}[s.month])
            case "fiscal":
                return date(s.year + 1, 3, 31)
            case _:
                return date(s.year, 12, 31)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


@lru_cache(maxsize=4096)
def parse_loose_date(text: str) -> LooseDate:
    """Parse one of the accepted forms; raises ``ValueError`` with the accepted forms listed."""
    value = text.strip()
    m = _RE.match(value)
    if m:
        year = int(m["y"])
        if not 1900 <= year <= 2100:
            raise ValueError(f"year {year} out of range in {value!r}")
        if m["m"] and not m["d"] and int(m["m"]) > 12 and int(m["m"]) == (year + 1) % 100:
            # '2024-25': a financial year written with a dash (no month is > 12)
            return LooseDate(value, date(year, 4, 1), "fiscal")
        try:
            if m["d"]:
                return LooseDate(value, date(year, int(m["m"]), int(m["d"])), "day")
            if m["m"]:
                return LooseDate(value, date(year, int(m["m"]), 1), "month")
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date") from exc
        if m["q"]:
            return LooseDate(value, date(year, 3 * int(m["q"]) - 2, 1), "quarter")
        if m["part"]:
            return LooseDate(value, date(year, _PART_MONTH[m["part"]], 1), "part")
        if m["fy"]:
            if int(m["fy"]) != (year + 1) % 100:
                raise ValueError(f"{value!r}: a financial year spans two consecutive years")
            return LooseDate(value, date(year, 4, 1), "fiscal")
        return LooseDate(value, date(year, 1, 1), "year")
    if _UNDATED.match(value):
        return LooseDate(value, None, "undated")
    raise ValueError(
        f"{value!r} is not a date: use 2018, 2018-07, 2018-07-24, 2020-Q4, 2024-mid, 2020/21 "
        "or undated / future / later"
    )


def sort_key(text: str | None) -> tuple[int, date]:
    """Dated values first in date order, undated ones after (stable)."""
    if not text:
        return (1, date.min)
    try:
        d = parse_loose_date(text).start
    except ValueError:
        return (1, date.min)
    return (0, d) if d else (1, date.min)


def format_loose_date(text: str, lang: str) -> str:
    """Show a loose date in the page language (English keeps the data's own spelling)."""
    try:
        d = parse_loose_date(text)
    except ValueError:
        return text
    if not lang.startswith("zh"):
        return d.raw
    if d.start is None:
        u = _UNDATED.match(d.raw)
        assert u is not None
        word = _UNDATED_ZH[u["word"]]
        hint = u["hint"]
        return f"{word}（{_MONTHS_ZH.get(hint, hint)}）" if hint else word
    y = d.start.year
    m = _RE.match(d.raw)
    assert m is not None
    match d.precision:
        case "day":
            return f"{y}年{d.start.month}月{d.start.day}日"
        case "month":
            return f"{y}年{d.start.month}月"
        case "quarter":
            return f"{y}年第{m['q']}季"
        case "part":
            return f"{y}年{_PART_ZH[m['part']]}"
        case "fiscal":
            return f"{y}/{(y + 1) % 100:02d}年度"
        case _:
            return f"{y}年"
