"""Every registered feed is a dataset: title in both languages, publisher, categories, the
live API, the upstream feed and bulk downloads as resources; syncing is idempotent."""

from __future__ import annotations

import dataclasses

from citypulse.catalogue.db import LOCAL_SOURCE
from citypulse.catalogue.feeds import feed_package, sync_feed_datasets
from citypulse.catalogue.service import Catalogue
from citypulse.feeds.registry import all_feeds


def test_every_feed_is_a_dataset(empty_catalogue: Catalogue) -> None:
    feeds = all_feeds()
    assert feeds, "no feed modules registered"
    sync_feed_datasets(empty_catalogue.db)
    assert sorted(empty_catalogue.db.source_packages(LOCAL_SOURCE)) == sorted(feeds)
    for spec in feeds.values():
        pkg = empty_catalogue.db.package(spec.id)
        assert pkg is not None
        assert pkg["title_translated"] == {"en": spec.title_en, "zh_Hant": spec.title_zh}
        assert pkg["notes_translated"]["zh_Hant"]
        urls = [r["url"] for r in pkg["resources"]]
        assert spec.url in urls
        assert f"/api/v1/feeds/{spec.id}/observations.csv" in urls
        assert f"/api/v1/feeds/{spec.id}/observations.parquet" in urls
        assert any(u.startswith(("/api/v1/latest?", "/api/v1/feeds")) for u in urls)
        formats = {r["format"] for r in pkg["resources"]}
        assert {"CSV", "Parquet"} <= formats
        assert pkg["organization"] is not None
        assert pkg["license_id"]
        assert {e["key"]: e["value"] for e in pkg["extras"]}["feed_id"] == spec.id


def test_sync_is_idempotent_and_follows_the_registry(empty_catalogue: Catalogue) -> None:
    feeds = dict(all_feeds())
    sync_feed_datasets(empty_catalogue.db, feeds)
    first = empty_catalogue.db.source_packages(LOCAL_SOURCE)
    assert sync_feed_datasets(empty_catalogue.db, feeds) == 0
    assert empty_catalogue.db.source_packages(LOCAL_SOURCE) == first  # modified unchanged
    some_id, spec = next(iter(feeds.items()))
    feeds[some_id] = dataclasses.replace(spec, title_en=spec.title_en + " (renamed)")
    assert sync_feed_datasets(empty_catalogue.db, feeds) == 1
    pkg = empty_catalogue.db.package(some_id)
    assert pkg is not None and pkg["title"].endswith("(renamed)")
    assert pkg["metadata_modified"] > first[some_id]
    del feeds[some_id]
    assert sync_feed_datasets(empty_catalogue.db, feeds) == 1
    assert empty_catalogue.db.package(some_id) is None


def test_feed_package_shape() -> None:
    for spec in all_feeds().values():
        pkg = feed_package(spec)
        assert pkg["name"] == spec.id
        assert pkg["organization"]["title_translated"]["zh_Hant"]
        assert all(r["name_translated"]["zh_Hant"] for r in pkg["resources"])
