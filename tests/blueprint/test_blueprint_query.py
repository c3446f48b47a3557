"""List filters: strict parsing (400 material), filtering, sorting and pagination."""

from __future__ import annotations

import pytest
from tests.blueprint.support import raw_initiatives

from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.query import (
    FilterError,
    Filters,
    owner_codes,
    owner_matches,
    parse_filters,
    select,
)
from citypulse.blueprint.search import SearchIndex
from citypulse.blueprint.service import index_fields

ITEMS = shipped_blueprint().initiatives
INDEX = SearchIndex((i.id, index_fields(i)) for i in ITEMS)


def search(q: str) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in INDEX.search(q)]


def run(**params: list[str]) -> list[str]:
    f = parse_filters(params)
    return [i.id for i in select(ITEMS, f, search=search, paginate=False).items]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"area": ["sports"]}, "unknown area 'sports'"),
        ({"status": ["done"]}, "unknown status 'done'"),
        ({"sort": ["colour"]}, "unknown sort 'colour'"),
        ({"page": ["abc"]}, "page must be a whole number"),
        ({"page": ["0"]}, "page must be between 1"),
        ({"per_page": ["1000"]}, "per_page must be between 1 and 200"),
        ({"year": ["20x"]}, "year must be a whole number"),
        ({"year": ["1800"]}, "year must be between"),
        ({"blueprint": ["2019"]}, "unknown blueprint"),
        ({"q": ["a", "b"]}, "q given 2 times"),
        ({"q": ["x" * 201]}, "longer than 200"),
    ],
)
def test_bad_params(params: dict[str, list[str]], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filters(params)


def test_filters_against_raw_yaml() -> None:
    raw = raw_initiatives()
    assert run(area=["mobility"]) == [r["id"] for r in raw if r["area"] == "mobility"]
    assert run(area=["mobility,living"]) == [
        r["id"] for r in raw if r["area"] in ("mobility", "living")
    ]
    assert run(status=["planned"]) == [r["id"] for r in raw if r["status"] == "planned"]
    assert run(evidence=["concept_only"]) == [
        r["id"] for r in raw if r["evidence"] == "concept_only"
    ]
    assert run(blueprint=["2017"]) == [r["id"] for r in raw if r["first_blueprint"] == 2017]
    assert run(blueprint=["later"]) == [r["id"] for r in raw if r["first_blueprint"] is None]
    year_2019 = [
        r["id"]
        for r in raw
        if any(str(m["date"]).startswith("2019") for m in r["milestones"])
        or str(r["status_as_of"]).startswith("2019")
    ]
    assert run(year=["2019"]) == year_2019
    assert run(area=["mobility"], status=["completed"]) == [
        r["id"] for r in raw if r["area"] == "mobility" and r["status"] == "completed"
    ]


def test_owner_whole_word() -> None:
    assert owner_matches("TD", "Transport Department (TD)")
    assert owner_matches("td", "Transport Department (TD)")
    assert not owner_matches("TD", "HKSTD Ltd")
    assert owner_matches("Transport Department", "Transport Department / Police")
    td = run(owner=["TD"])
    assert "mobility-01" in td and "living-01" not in td
    codes = dict(owner_codes(ITEMS))
    assert codes["TD"] == len(td)
    assert "OGCIO" in codes and "DPO" in codes


def test_sorting() -> None:
    titles = [
        i.title_en.casefold()
        for i in select(ITEMS, Filters(sort="title"), search=search, paginate=False).items
    ]
    assert titles == sorted(titles)
    rev = select(ITEMS, Filters(sort="-title"), search=search, paginate=False).items
    assert [i.title_en.casefold() for i in rev] == sorted(titles, reverse=True)
    by_status = select(ITEMS, Filters(sort="status"), search=search, paginate=False).items
    assert by_status[0].status == "planned" and by_status[-1].status == "unknown"
    newest = select(ITEMS, Filters(sort="updated"), search=search, paginate=False).items
    assert newest[0].status_as_of >= newest[1].status_as_of
    assert newest[-1].status_as_of == "undated"
    relevance = select(ITEMS, Filters(q="toll"), search=search, paginate=False).items
    assert relevance[0].id == "mobility-06"


def test_pagination() -> None:
    page2 = select(ITEMS, Filters(page=2, per_page=50), search=search)
    assert (page2.total, page2.pages, len(page2.items)) == (124, 3, 50)
    assert page2.items[0].id == ITEMS[50].id
    with pytest.raises(FilterError, match="past the last page"):
        select(ITEMS, Filters(page=4, per_page=50), search=search)
    empty = select(ITEMS, Filters(q="zzzqqq"), search=search)
    assert (empty.total, empty.pages) == (0, 1)


def test_query_string_round_trip() -> None:
    f = parse_filters({"q": ["智方便"], "area": ["living"], "sort": ["-title"], "page": ["1"]})
    assert f.query_string() == "?q=%E6%99%BA%E6%96%B9%E4%BE%BF&area=living&sort=-title"
    assert f.query_string(page=3).endswith("&page=3")
