"""Search: relevance on known datasets (English and Chinese), the Solr-like filter language,
facets, sorting and paging, checked against counts computed from the recorded files."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citypulse.catalogue.errors import SearchQueryError
from citypulse.catalogue.search import SearchParams, parse_query, parse_sort
from citypulse.catalogue.service import Catalogue
from conftest import recorded_packages

PACKAGES = recorded_packages()


def names(cat: Catalogue, **kw: object) -> list[str]:
    params = SearchParams(rows=1000, facet=False, **kw)  # type: ignore[arg-type]
    res = cat.search(params)
    return [p["name"] for p in cat.db.packages_by_rid(res.rids)]


@pytest.mark.parametrize(
    ("q", "best"),
    [
        ("traffic speed", "hk-td-sm_1-traffic-speed-map"),
        ("speed map", "hk-td-sm_1-traffic-speed-map"),
        ("交通速度", "hk-td-sm_1-traffic-speed-map"),
        ("weather", "hk-hko-rss-current-weather-report"),
        ("天氣報告", "hk-hko-rss-current-weather-report"),
        ("air quality", "hk-epd-airteam-air-quality-health-index"),
        ("空氣質素", "hk-epd-airteam-air-quality-health-index"),
        ("spending", "hk-censtatd-spending-spending-data"),
        ("allowances", "hk-try-allowance-school-passage-allowance"),  # stemmed
        ("wi-fi hotspots", "hk-dpo-wifi-wifi-hk-locations"),
        ("熱點", "hk-dpo-wifi-wifi-hk-locations"),
        ("Observatory", "hk-hko-rss-current-weather-report"),  # organization title
        ("detectors", "hk-td-sm_4-traffic-data-strategic-major-roads"),  # resource name
    ],
)
def test_relevance_on_known_datasets(loaded_catalogue: Catalogue, q: str, best: str) -> None:
    found = names(loaded_catalogue, q=q)
    assert found and found[0] == best


def test_every_word_must_match(loaded_catalogue: Catalogue) -> None:
    assert names(loaded_catalogue, q="traffic spending") == []
    both = set(names(loaded_catalogue, q="traffic OR spending"))
    assert "hk-censtatd-spending-spending-data" in both
    assert "hk-td-sm_1-traffic-speed-map" in both


def test_chinese_matches_substrings_not_single_characters(loaded_catalogue: Catalogue) -> None:
    # 交通 appears in the two TD datasets only; 交 and 通 separately appear elsewhere too.
    expected = {p["name"] for p in PACKAGES
                if any("交通" in (p.get(f"{f}_translated") or {}).get("zh_Hant", "")
                       for f in ("title", "notes"))
                or any("交通" in (r.get("name_translated") or {}).get("zh_Hant", "")
                       or "交通" in (r.get("description_translated") or {}).get("zh_Hant", "")
                       for r in p["resources"])}
    assert set(names(loaded_catalogue, q="交通")) == expected


def test_filters(loaded_catalogue: Catalogue) -> None:
    by_org = Counter(p["organization"]["name"] for p in PACKAGES)
    assert len(names(loaded_catalogue, fq=["organization:hk-td"])) == by_org["hk-td"]
    assert len(names(loaded_catalogue, fq=['+organization:"hk-td"'])) == by_org["hk-td"]
    assert len(names(loaded_catalogue, fq=["-organization:hk-td"])) == len(PACKAGES) - by_org[
        "hk-td"]
    in_groups = [p for p in PACKAGES if {g["name"] for g in p["groups"]} & {"transport",
                                                                            "finance"}]
    assert len(names(loaded_catalogue, fq=["groups:(transport OR finance)"])) == len(in_groups)
    csv = [p for p in PACKAGES if any(r["format"] == "CSV" for r in p["resources"])]
    assert len(names(loaded_catalogue, fq=["res_format:CSV"])) == len(csv)
    recent = [p for p in PACKAGES if p["metadata_modified"] >= "2026-01-01"]
    assert len(names(loaded_catalogue, fq=["metadata_modified:[2026-01-01T00:00:00Z TO *]"])) \
        == len(recent)
    assert len(names(loaded_catalogue, fq=["metadata_modified:[* TO 2025-12-31]"])) == len(
        PACKAGES) - len(recent)
    # What CKAN itself adds to fq, and fielded text search in q.
    assert len(names(loaded_catalogue, fq=["+capacity:public +state:active"])) == len(PACKAGES)
    assert names(loaded_catalogue, q="name:hk-hko-rss-current-weather-report") == [
        "hk-hko-rss-current-weather-report"]
    assert names(loaded_catalogue, q="title:spending") == ["hk-censtatd-spending-spending-data"]
    assert set(names(loaded_catalogue, fq=["name:hk-td*"])) == {
        p["name"] for p in PACKAGES if p["name"].startswith("hk-td")}
    assert names(loaded_catalogue, fq=["tags:nothing-like-this"]) == []
    assert len(names(loaded_catalogue, fq=["num_resources:[2 TO *]"])) == sum(
        1 for p in PACKAGES if len(p["resources"]) >= 2)


def test_facets_count_the_matching_datasets(loaded_catalogue: Catalogue) -> None:
    res = loaded_catalogue.search(SearchParams(
        facet_fields=["organization", "groups", "res_format", "license_id"], rows=0))
    assert res.count == len(PACKAGES)
    orgs = Counter(p["organization"]["name"] for p in PACKAGES)
    assert dict(res.facets["organization"]) == dict(orgs)
    # Ordered by count, ties by name (as Solr does).
    assert res.facets["organization"] == sorted(orgs.items(), key=lambda kv: (-kv[1], kv[0]))
    groups = Counter(g["name"] for p in PACKAGES for g in p["groups"])
    assert dict(res.facets["groups"]) == dict(groups)
    formats = Counter(f for p in PACKAGES for f in {r["format"] for r in p["resources"]})
    assert dict(res.facets["res_format"]) == dict(formats)
    # Facets follow the filter; facet.limit caps the values.
    res = loaded_catalogue.search(SearchParams(fq=["organization:hk-td"],
                                               facet_fields=["res_format"], rows=0))
    assert dict(res.facets["res_format"]) == dict(Counter(
        f for p in PACKAGES if p["organization"]["name"] == "hk-td"
        for f in {r["format"] for r in p["resources"]}))
    res = loaded_catalogue.search(SearchParams(facet_fields=["organization"], facet_limit=2,
                                               rows=0))
    assert len(res.facets["organization"]) == 2


def test_sort_and_paging(loaded_catalogue: Catalogue) -> None:
    assert names(loaded_catalogue, sort="name asc") == sorted(p["name"] for p in PACKAGES)
    assert names(loaded_catalogue, sort="name desc") == sorted(
        (p["name"] for p in PACKAGES), reverse=True)
    by_modified = [p["name"] for p in sorted(PACKAGES, key=lambda p: p["metadata_modified"],
                                             reverse=True)]
    assert names(loaded_catalogue) == by_modified  # no q: score ties, newest first
    assert names(loaded_catalogue, sort="metadata_modified desc") == by_modified
    titles = [p["name"] for p in sorted(PACKAGES, key=lambda p: p["title"].casefold())]
    assert names(loaded_catalogue, sort="title_string asc") == titles
    pages: list[str] = []
    for start in range(0, len(PACKAGES), 3):
        res = loaded_catalogue.search(SearchParams(sort="name asc", rows=3, start=start,
                                                   facet=False))
        assert res.count == len(PACKAGES)
        pages += [p["name"] for p in loaded_catalogue.db.packages_by_rid(res.rids)]
    assert pages == sorted(p["name"] for p in PACKAGES)
    res = loaded_catalogue.search(SearchParams(start=1000, rows=10))
    assert res.rids == [] and res.count == len(PACKAGES)


@pytest.mark.parametrize("text", ['"unclosed', "(a OR b", "a)", "tags:", "title:[a TO",
                                  "metadata_modified:[yesterday TO *]", "nosuchfield:x"])
def test_bad_queries_are_search_query_errors(loaded_catalogue: Catalogue, text: str) -> None:
    with pytest.raises(SearchQueryError):
        loaded_catalogue.search(SearchParams(fq=[text]))


@pytest.mark.parametrize("sort", ["name up", "nosuch asc", "name asc desc", ","])
def test_bad_sort(sort: str) -> None:
    with pytest.raises(SearchQueryError):
        parse_sort(sort)


def test_parser_shapes() -> None:
    node = parse_query('tags:(a OR "b c") -organization:x metadata_modified:[* TO NOW]')
    assert type(node).__name__ == "And"
    assert type(parse_query("*:*")).__name__ == "All"
    assert type(parse_query("")).__name__ == "All"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=40), fq=st.text(max_size=40))
def test_any_text_is_a_result_or_a_search_query_error(
    loaded_catalogue: Catalogue, q: str, fq: str
) -> None:
    try:
        res = loaded_catalogue.search(SearchParams(q=q, fq=[fq], facet_fields=["tags"]))
    except SearchQueryError:
        return
    assert 0 <= res.count <= len(PACKAGES)


def test_index_follows_writes(loaded_catalogue: Catalogue) -> None:
    before = loaded_catalogue.search(SearchParams(q="parking")).count
    loaded_catalogue.db.upsert_packages(
        [{"name": "car-parks", "title": "Car parking vacancy", "notes": "停車場空位"}],
        source="test")
    assert loaded_catalogue.search(SearchParams(q="parking")).count == before + 1
    assert loaded_catalogue.search(SearchParams(q="停車場")).count == 1
    loaded_catalogue.db.delete_packages(["car-parks"])
    assert loaded_catalogue.search(SearchParams(q="parking")).count == before
