"""Search finds initiatives by English and Chinese words, including parts of Chinese words."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.blueprint.support import make_portal, raw_initiatives

from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.search import SearchIndex, query_terms
from citypulse.blueprint.service import index_fields

ITEMS = shipped_blueprint().initiatives
INDEX = SearchIndex((i.id, index_fields(i)) for i in ITEMS)


def ids(query: str) -> list[str]:
    return [h.id for h in INDEX.search(query)]


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("HKeToll", "mobility-06"),
        ("hketoll", "mobility-06"),
        ("易通行", "mobility-06"),
        ("智方便", "living-02"),
        ("Faster Payment", "living-01"),
        ("轉數快", "living-01"),
        ("lampposts", "government-03"),
        ("智慧燈柱", "government-03"),
        ("LeaveHomeSafe", "covid-19-03"),
        ("積金易", "economy-04"),
        ("parking meters", "mobility-08"),
        ("Ｈ Ｋ ｅ Ｔｏｌｌ".replace(" ", ""), "mobility-06"),  # full-width letters
    ],
)
def test_known_initiatives_come_first(query: str, first: str) -> None:
    assert ids(query)[0] == first


def test_partial_chinese_words() -> None:
    # '出行' is inside 香港出行易 (mobility-01) and 安心出行 (covid-19-03): titles rank first,
    # then the Smart Mobility initiatives found through the area name 智慧出行.
    found = ids("出行")
    assert set(found[:2]) == {"mobility-01", "covid-19-03"}
    assert {i.id for i in ITEMS if i.area == "mobility"} <= set(found)
    assert ids("交通基金")[0] == "mobility-05"  # part of 智慧交通基金
    assert ids("方便")[0] == "living-02"  # part of 智方便
    assert ids("鄉村") and all(i.startswith("smart-village") for i in ids("鄉村"))


def test_all_terms_must_match() -> None:
    both = set(ids("tunnel toll"))
    assert "mobility-06" in both
    assert both <= set(ids("tunnel")) & set(ids("toll"))
    assert ids("HKeToll 智方便") == []
    assert ids("zzzqqq") == []
    assert ids("   ") == []


def test_query_terms() -> None:
    assert query_terms("Lampposts, facilities；智方便") == ["lamppost", "facilit", "智方便"]
    assert query_terms("bus bus") == ["bus"]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_part_of_a_title_finds_it(data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from(raw_initiatives()))
    title = data.draw(st.sampled_from([t for t in (raw["title_en"], raw["title_zh_hant"]) if t]))
    start = data.draw(st.integers(0, len(title) - 2))
    part = title[start : start + data.draw(st.integers(2, 6))].strip()
    if len(query_terms(part)) == 0:
        return
    assert raw["id"] in ids(part), (part, raw["id"])


def test_search_sees_edits(tmp_path: Path) -> None:
    portal = make_portal(tmp_path)
    user = portal.db.add_user("eddie", "correct horse battery", "editor")
    assert not portal.search("智慧停車")
    item = portal.get("mobility-15")
    assert item is not None
    portal.save_edit(
        "mobility-15",
        0,
        user,
        "Chinese title from the TD page",
        {"title_zh_hant": "自動泊車系統（智慧停車）"},
    )
    assert portal.search("智慧停車")[0][0] == "mobility-15"
