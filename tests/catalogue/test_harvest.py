"""Harvest from a live local HTTP server replaying recorded DATA.GOV.HK responses (list mode,
two languages) and from citypulse's own CKAN API (search mode)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from ckan_replay import ReplayCKAN

from citypulse.catalogue.db import LOCAL_SOURCE
from citypulse.catalogue.harvest import SourceError, harvest, merge_languages, resolve_source
from citypulse.catalogue.service import Catalogue
from citypulse.config import Settings
from citypulse.web.app import create_app
from conftest import recorded

NAMES = recorded("en-data", "package_list")
GROUPED = {
    p["name"] for g in recorded("en-data", "group_list")
    for p in recorded("en-data", "group_show", g)["packages"]
}


def test_resolve_source_language_prefixes() -> None:
    src = resolve_source("https://data.gov.hk/en-data/api/3/action/")
    assert src.root == "https://data.gov.hk"
    assert src.api == {"en": "https://data.gov.hk/en-data/api/3/action/",
                       "zh_Hant": "https://data.gov.hk/tc-data/api/3/action/"}
    assert resolve_source("https://data.gov.hk").api == src.api
    plain = resolve_source("https://demo.ckan.org/api/3/action")
    assert plain.api == {"en": "https://demo.ckan.org/api/3/action/"}
    assert not plain.multilingual
    custom = resolve_source("http://x.test/", languages={"en": "en", "zh_Hant": "zh"})
    assert custom.api["zh_Hant"] == "http://x.test/zh/api/3/action/"
    with pytest.raises(SourceError):
        resolve_source("ftp://example.org")


def test_harvest_datagovhk_both_languages(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    seen: list[tuple[int, int]] = []
    report = harvest(empty_catalogue.db, f"{url}/en-data/", progress=lambda d, t: seen.append(
        (d, t)))
    assert report.error is None and report.complete
    assert report.mode == "list"
    assert report.listed == len(NAMES) and report.fetched == len(NAMES)
    assert seen[-1] == (len(NAMES), len(NAMES))
    assert server.show_count("en-data") == len(NAMES)
    assert server.show_count("tc-data") == len(NAMES)
    # No package_search was even tried on a DATA.GOV.HK-style source.
    assert not any(a == "package_search" for _, a, _ in server.calls)
    assert sorted(empty_catalogue.db.package_names()) == sorted(NAMES)

    pkg = empty_catalogue.db.package("hk-td-sm_1-traffic-speed-map")
    assert pkg is not None
    en = recorded("en-data", "package_show", "hk-td-sm_1-traffic-speed-map")
    zh = recorded("tc-data", "package_show", "hk-td-sm_1-traffic-speed-map")
    assert pkg["title"] == en["title"]
    assert pkg["title_translated"] == {"en": en["title"], "zh_Hant": zh["title"]}
    assert pkg["notes_translated"]["zh_Hant"] == zh["notes"]
    assert pkg["organization"]["title_translated"] == {
        "en": en["organization"]["title"], "zh_Hant": zh["organization"]["title"]}
    assert [r["id"] for r in pkg["resources"]] == [r["id"] for r in en["resources"]]
    assert pkg["resources"][0]["name_translated"]["zh_Hant"] == zh["resources"][0]["name"]
    assert pkg["update_frequency"] == en["update_frequency"]  # source extras kept verbatim
    assert pkg["license_id"] == "hk-datagovhk-terms"
    extras = {e["key"]: e["value"] for e in pkg["extras"]}
    assert extras["source_page"].endswith("/en-data/dataset/hk-td-sm_1-traffic-speed-map")
    # Categories from group_show, with their Chinese titles.
    transport = empty_catalogue.db.group("transport", organizations=False)
    assert transport is not None
    assert transport["title_translated"] == {
        "en": recorded("en-data", "group_show", "transport")["title"],
        "zh_Hant": recorded("tc-data", "group_show", "transport")["title"],
    }
    state = empty_catalogue.db.source_state(report.source)
    assert state["status"] == "ok" and state["mode"] == "list"
    assert empty_catalogue.db.todo(report.source) == []


def test_harvest_is_incremental(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    harvest(empty_catalogue.db, f"{url}/en-data")
    server.calls.clear()
    again = harvest(empty_catalogue.db, f"{url}/en-data")
    # Only datasets without a modification time in any group are read again; none changed.
    ungrouped = set(NAMES) - GROUPED
    assert again.planned == len(ungrouped) and again.changed == 0
    assert {i for _, a, i in server.calls if a == "package_show"} == ungrouped

    name = "hk-hko-rss-current-weather-report"
    server.patches[name] = {"metadata_modified": "2026-05-01T08:00:00.000000",
                            "title": "Current Weather Report (revised)"}
    server.calls.clear()
    third = harvest(empty_catalogue.db, f"{url}/en-data")
    assert third.planned == len(ungrouped) + 1 and third.changed == 1
    pkg = empty_catalogue.db.package(name)
    assert pkg is not None
    assert pkg["title"] == "Current Weather Report (revised)"
    assert pkg["metadata_modified"] == "2026-05-01T08:00:00.000000"
    assert ("en-data", "package_show", "hk-td-sm_1-traffic-speed-map") not in server.calls


def test_full_harvest_rereads_everything(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    url = replay[1]
    harvest(empty_catalogue.db, f"{url}/en-data")
    report = harvest(empty_catalogue.db, f"{url}/en-data", full=True)
    assert report.planned == len(NAMES) and report.changed == 0


def test_dataset_removed_at_source_is_removed(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    harvest(empty_catalogue.db, f"{url}/en-data")
    server.hidden.add("hk-try-allowance-school-passage-allowance")
    report = harvest(empty_catalogue.db, f"{url}/en-data")
    assert report.deleted == 1
    assert empty_catalogue.db.package("hk-try-allowance-school-passage-allowance") is None
    assert empty_catalogue.db.count() == len(NAMES) - 1


def test_garbage_stops_the_source_keeps_what_it_had_and_resumes(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    bad = sorted(NAMES)[3]
    server.garbage.add(("package_show", bad))
    report = harvest(empty_catalogue.db, f"{url}/en-data", concurrency=1, batch_size=2)
    assert not report.complete
    assert report.error is not None and "not JSON" in report.error
    # Sequential: the batch before and the good half of the failing batch were kept.
    assert sorted(empty_catalogue.db.package_names()) == sorted(NAMES)[:3]
    state = empty_catalogue.db.source_state(report.source)
    assert state["status"] == "interrupted" and "not JSON" in state["last_error"]
    assert [n for n, _ in empty_catalogue.db.todo(report.source)] == sorted(NAMES)[3:]

    server.garbage.clear()
    server.calls.clear()
    resumed = harvest(empty_catalogue.db, f"{url}/en-data")
    assert resumed.resumed and resumed.complete and resumed.error is None
    assert resumed.fetched == len(NAMES) - 3
    assert not any(a == "package_list" for _, a, _ in server.calls)  # plan reused
    assert sorted(empty_catalogue.db.package_names()) == sorted(NAMES)
    assert empty_catalogue.db.source_state(report.source)["status"] == "ok"


def test_parallel_fetches_keep_everything_but_the_failure(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    bad = sorted(NAMES)[2]
    server.garbage.add(("package_show", bad))
    report = harvest(empty_catalogue.db, f"{url}/en-data", concurrency=4)
    assert report.error is not None
    assert sorted(empty_catalogue.db.package_names()) == sorted(set(NAMES) - {bad})
    assert [n for n, _ in empty_catalogue.db.todo(report.source)] == [bad]
    server.garbage.clear()
    assert harvest(empty_catalogue.db, f"{url}/en-data").fetched == 1
    assert empty_catalogue.db.count() == len(NAMES)


def test_timeout_stops_the_source(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    slow = sorted(NAMES)[1]
    server.delay[("package_show", slow)] = 1.5
    report = harvest(empty_catalogue.db, f"{url}/en-data", timeout=0.3, retries=0)
    assert report.error is not None and "timed out" in report.error
    assert slow not in empty_catalogue.db.package_names()
    server.delay.clear()
    assert harvest(empty_catalogue.db, f"{url}/en-data").complete
    assert empty_catalogue.db.count() == len(NAMES)


def test_garbage_listing_is_refused(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    server.garbage.add(("package_list", ""))
    report = harvest(empty_catalogue.db, f"{url}/en-data")
    assert report.error is not None and empty_catalogue.db.count() == 0


def test_unreachable_source(empty_catalogue: Catalogue) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = harvest(empty_catalogue.db, f"http://127.0.0.1:{port}/en-data", retries=0,
                     timeout=2)
    assert report.error is not None and not report.complete


def test_local_dataset_names_are_not_overwritten(
    empty_catalogue: Catalogue, replay: tuple[ReplayCKAN, str]
) -> None:
    url = replay[1]
    name = "hk-td-sm_1-traffic-speed-map"
    empty_catalogue.db.upsert_packages([{"name": name, "title": "Ours"}], source=LOCAL_SOURCE)
    report = harvest(empty_catalogue.db, f"{url}/en-data")
    assert report.skipped == 1 and any(name in w for w in report.warnings)
    pkg = empty_catalogue.db.package(name)
    assert pkg is not None and pkg["title"] == "Ours"


def test_merge_languages_matches_resources_by_id() -> None:
    en = {"name": "x", "title": "Title", "resources": [{"id": "a", "name": "A"},
                                                        {"id": "b", "name": "B"}]}
    zh = {"name": "x", "title": "標題", "resources": [{"id": "b", "name": "乙"},
                                                       {"id": "a", "name": "甲"}]}
    merged = merge_languages({"en": en, "zh_Hant": zh})
    assert merged["title_translated"] == {"en": "Title", "zh_Hant": "標題"}
    assert [r["name_translated"] for r in merged["resources"]] == [
        {"en": "A", "zh_Hant": "甲"}, {"en": "B", "zh_Hant": "乙"}]


# --- search mode: harvest citypulse's own CKAN API ---------------------------------------

@contextmanager
def live_app(cat: Catalogue, tmp: Path) -> Iterator[str]:
    app = create_app(Settings(data_dir=tmp), store=object())  # type: ignore[arg-type]
    app.state.catalogue = cat
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


def test_harvest_search_mode_from_citypulse(loaded_catalogue: Catalogue, tmp_path: Path) -> None:
    target = Catalogue(tmp_path / "target.sqlite", sync_feeds=False)
    try:
        with live_app(loaded_catalogue, tmp_path) as url:
            report = harvest(target.db, url, page_size=3)
            assert report.error is None and report.mode == "search"
            assert report.fetched == len(NAMES)
            assert sorted(target.db.package_names()) == sorted(NAMES)
            name = "hk-epd-airteam-air-quality-health-index"
            pkg: dict[str, Any] | None = target.db.package(name)
            assert pkg is not None
            assert pkg["title_translated"]["zh_Hant"] == recorded(
                "tc-data", "package_show", name)["title"]
            state = target.db.source_state(report.source)
            assert state["hwm"] == max(
                recorded("en-data", "package_show", n)["metadata_modified"] for n in NAMES)
            # Incremental: only the boundary (modified == high-water mark) is read again.
            again = harvest(target.db, url, page_size=3)
            assert again.error is None and again.changed == 0 and again.fetched <= 1
            # A dataset deleted at the source goes here too.
            loaded_catalogue.db.delete_packages(["hk-dpo-wifi-wifi-hk-locations"])
            third = harvest(target.db, url)
            assert third.deleted == 1
    finally:
        target.close()
