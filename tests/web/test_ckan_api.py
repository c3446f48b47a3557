"""The CKAN Action API proven with the real ``ckanapi`` client: RemoteCKAN pointed at a live
citypulse (uvicorn on 127.0.0.1) works unmodified: search with facets and paging, show,
lists, and CKAN's exceptions for bad input."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ckanapi
import pytest
from tests.web.conftest import LiveServer, start_server

from citypulse.catalogue.harvest import merge_languages
from citypulse.catalogue.service import Catalogue
from citypulse.config import Settings
from citypulse.feeds.registry import all_feeds
from citypulse.web.app import create_app

FIXTURES = Path(__file__).parents[1] / "catalogue" / "fixtures" / "datagovhk"


def recorded(prefix: str, action: str, ident: str | None = None) -> Any:
    path = FIXTURES / prefix / (f"{action}/{ident}.json" if ident else f"{action}.json")
    return json.loads(path.read_text(encoding="utf-8"))["result"]


RECORDED = [
    merge_languages({"en": recorded("en-data", "package_show", n),
                     "zh_Hant": recorded("tc-data", "package_show", n)})
    for n in recorded("en-data", "package_list")
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("ckan")
    cat = Catalogue(tmp / "catalogue.sqlite", sync_feeds=True)
    cat.db.upsert_packages(RECORDED, source="recorded")
    app = create_app(Settings(data_dir=tmp), store=object())  # type: ignore[arg-type]
    app.state.catalogue = cat
    server = start_server(app)
    yield server
    server.stop()
    cat.close()


@pytest.fixture
def ckan(live: LiveServer) -> Iterator[ckanapi.RemoteCKAN]:
    with ckanapi.RemoteCKAN(live.url, user_agent="citypulse-tests") as remote:
        yield remote


def all_names() -> list[str]:
    return sorted([*(p["name"] for p in RECORDED), *all_feeds()])


def test_package_list_and_show(ckan: ckanapi.RemoteCKAN) -> None:
    assert ckan.action.package_list() == all_names()
    assert ckan.action.package_list(limit=3, offset=2) == all_names()[2:5]
    pkg = ckan.action.package_show(id="hk-td-sm_1-traffic-speed-map")
    src = recorded("en-data", "package_show", "hk-td-sm_1-traffic-speed-map")
    assert pkg["title"] == src["title"]
    assert pkg["num_resources"] == len(src["resources"])
    assert [r["url"] for r in pkg["resources"]] == [r["url"] for r in src["resources"]]
    assert ckan.action.package_show(id=pkg["id"])["name"] == pkg["name"]  # by id too
    with pytest.raises(ckanapi.NotFound):
        ckan.action.package_show(id="no-such-dataset")
    with pytest.raises(ckanapi.ValidationError):
        ckan.action.package_show()


def test_package_search_with_facets(ckan: ckanapi.RemoteCKAN) -> None:
    result = ckan.call_action("package_search", {
        "q": "traffic", "facet.field": ["organization", "res_format", "groups"], "rows": 5,
    })
    assert result["count"] >= 2
    names = [p["name"] for p in result["results"]]
    assert "hk-td-sm_1-traffic-speed-map" in names
    assert set(result["search_facets"]) == {"organization", "res_format", "groups"}
    org_items = result["search_facets"]["organization"]["items"]
    td = next(i for i in org_items if i["name"] == "hk-td")
    assert td["display_name"] == "Transport Department"
    assert sum(i["count"] for i in org_items) == result["count"]
    # Facet counts equal what a filter query returns.
    for item in org_items:
        filtered = ckan.action.package_search(q="traffic", fq=f'organization:"{item["name"]}"',
                                              rows=0)
        assert filtered["count"] == item["count"]
    assert result["facets"]["organization"] == {i["name"]: i["count"] for i in org_items}


def test_package_search_paging_covers_everything_once(ckan: ckanapi.RemoteCKAN) -> None:
    seen: list[str] = []
    start = 0
    while True:
        page = ckan.action.package_search(rows=4, start=start, sort="name asc")
        if not page["results"]:
            break
        seen += [p["name"] for p in page["results"]]
        start += 4
    assert seen == all_names()
    assert ckan.action.package_search()["count"] == len(all_names())
    assert len(ckan.action.package_search()["results"]) == 10  # CKAN's default rows


def test_search_facets_by_recorded_counts(ckan: ckanapi.RemoteCKAN) -> None:
    fq = "+organization:(hk-td OR hk-hko OR hk-epd OR hk-censtatd OR hk-try OR hk-dpo)"
    res = ckan.call_action("package_search", {"fq": fq, "facet.field": ["groups"],
                                              "facet.limit": -1, "rows": 0})
    recorded_groups = Counter(g["name"] for p in RECORDED for g in p["groups"])
    local_groups = Counter(
        g["name"] for p in ckan.action.package_search(fq=fq, rows=1000)["results"]
        for g in p["groups"])
    assert res["facets"]["groups"] == dict(local_groups)
    assert all(res["facets"]["groups"][k] >= v for k, v in recorded_groups.items())


def test_ckan_errors_reach_the_client(ckan: ckanapi.RemoteCKAN) -> None:
    with pytest.raises(ckanapi.ValidationError) as err:
        ckan.action.package_search(rows=-1)
    assert err.value.error_dict["rows"] == ["Must be a natural number"]
    with pytest.raises(ckanapi.ValidationError):
        ckan.action.package_search(start="x")
    with pytest.raises(ckanapi.SearchQueryError):
        ckan.action.package_search(sort="nonsense desc")
    with pytest.raises(ckanapi.SearchQueryError):
        ckan.action.package_search(fq="tags:(unclosed")
    with pytest.raises(ckanapi.NotAuthorized):
        ckan.action.package_create(name="x")
    with pytest.raises(ckanapi.NotFound):
        ckan.action.resource_show(id="nope")
    with pytest.raises(ckanapi.NotFound):
        ckan.action.organization_show(id="nope")


def test_organizations_groups_tags_resources(ckan: ckanapi.RemoteCKAN) -> None:
    orgs = ckan.action.organization_list()
    assert "hk-td" in orgs and orgs == sorted(orgs, key=lambda n: ckan.action.organization_show(
        id=n)["title"].casefold())
    full = ckan.action.organization_list(all_fields=True, limit=100)
    td = next(o for o in full if o["name"] == "hk-td")
    assert td["package_count"] == ckan.action.package_search(fq="organization:hk-td")["count"]
    shown = ckan.action.organization_show(id="hk-td", include_datasets=True)
    assert shown["package_count"] == len(shown["packages"]) == td["package_count"]
    assert "transport" in ckan.action.group_list()
    grp = ckan.action.group_show(id="transport", include_datasets=True)
    assert {p["name"] for p in grp["packages"]} >= {
        "hk-td-sm_1-traffic-speed-map", "hk-td-sm_4-traffic-data-strategic-major-roads"}
    tags = ckan.action.tag_list()
    assert tags == sorted(tags) and "real-time" in tags
    assert ckan.action.tag_list(query="real") == ["real-time"]
    res_id = ckan.action.package_show(id="hk-hko-rss-current-weather-report")["resources"][0]["id"]
    res = ckan.action.resource_show(id=res_id)
    assert res["format"] == "RSS" and res["package_id"]
    status = ckan.action.status_show()
    assert status["ckan_version"].startswith("2.")


def test_get_only_client_and_chinese_site(live: LiveServer) -> None:
    with ckanapi.RemoteCKAN(live.url, get_only=True) as remote:
        res = remote.action.package_search(q="weather report", rows=3)
        assert res["results"][0]["name"] == "hk-hko-rss-current-weather-report"
    with ckanapi.RemoteCKAN(live.url + "/zh-hant") as remote:
        pkg = remote.action.package_show(id="hk-hko-rss-current-weather-report")
        zh = recorded("tc-data", "package_show", "hk-hko-rss-current-weather-report")
        assert pkg["title"] == zh["title"]
        assert pkg["organization"]["title"] == zh["organization"]["title"]
        assert pkg["resources"][0]["name"] == zh["resources"][0]["name"]
        hits = remote.action.package_search(q="天氣報告")["results"]
        assert hits and hits[0]["name"] == "hk-hko-rss-current-weather-report"
