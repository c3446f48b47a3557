"""Loose dates: every form in the data parses, sorts and prints in Chinese; typos are refused."""

from __future__ import annotations

from datetime import date

import pytest
from tests.blueprint.support import raw_initiatives

from citypulse.blueprint.dates import format_loose_date, parse_loose_date, sort_key


@pytest.mark.parametrize(
    ("text", "start", "end", "zh"),
    [
        ("2018", date(2018, 1, 1), date(2018, 12, 31), "2018年"),
        ("2018-07", date(2018, 7, 1), date(2018, 7, 31), "2018年7月"),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29), "2024年2月"),
        ("2018-07-24", date(2018, 7, 24), date(2018, 7, 24), "2018年7月24日"),
        ("2020-Q4", date(2020, 10, 1), date(2020, 12, 31), "2020年第4季"),
        ("2024-mid", date(2024, 7, 1), date(2024, 8, 31), "2024年年中"),
        ("2019-late", date(2019, 10, 1), date(2019, 12, 31), "2019年底"),
        ("2020/21", date(2020, 4, 1), date(2021, 3, 31), "2020/21年度"),
        ("2024-25", date(2024, 4, 1), date(2025, 3, 31), "2024/25年度"),
        ("undated", None, None, "未註明日期"),
        ("undated (August)", None, None, "未註明日期（8月）"),
        ("future", None, None, "日後"),
    ],
)
def test_forms(text: str, start: date | None, end: date | None, zh: str) -> None:
    d = parse_loose_date(text)
    assert (d.start, d.end) == (start, end)
    assert format_loose_date(text, "zh-Hant") == zh
    assert format_loose_date(text, "en") == text


@pytest.mark.parametrize("text", ["2019-13", "2019-02-30", "Q4 2020", "soon", "20190", "2020/22"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_loose_date(text)


def test_every_date_in_the_data_parses() -> None:
    seen = 0
    for item in raw_initiatives():
        texts = [str(item["status_as_of"])] + [str(m["date"]) for m in item["milestones"]]
        texts += [str(f["as_of"]) for f in item["figures"]]
        for text in texts:
            parse_loose_date(text)
            seen += 1
    assert seen > 400


def test_sort_key_puts_undated_last() -> None:
    texts = ["undated", "2020", "2019-07-01", "later", "2019-Q3"]
    assert sorted(texts, key=sort_key)[:3] == ["2019-07-01", "2019-Q3", "2020"]
