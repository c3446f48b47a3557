"""Every citypulse feed is a dataset of the catalogue, built from its FeedSpec.

Resources per feed: the live JSON API (latest value per entity), the upstream feed itself, and
bulk downloads of the stored observations (CSV and Parquet, any date range). Local URLs are
stored as paths and made absolute per request.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode

from citypulse.catalogue.db import LOCAL_SOURCE, CatalogueDB
from citypulse.catalogue.model import Package, licence_id_for, slug
from citypulse.feeds.base import FeedSpec

# Publisher of each feed, keyed by words of its attribution or its id prefix; names as on
# DATA.GOV.HK so harvested datasets of the same department land in the same organization.
_ORGS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("transport department", "td"), "hk-td", "Transport Department", "運輸署"),
    (("observatory", "hko"), "hk-hko", "Hong Kong Observatory", "香港天文台"),
    (("environmental protection", "epd"), "hk-epd", "Environmental Protection Department",
     "環境保護署"),
    (("department of health", "covid19", "chp"), "hk-dh", "Department of Health", "衞生署"),
    (("digital policy", "ogcio", "wifi"), "hk-dpo", "Digital Policy Office", "數字政策辦公室"),
)
# citypulse topics -> DATA.GOV.HK categories (CKAN groups).
_GROUPS: dict[str, tuple[str, str, str]] = {
    "traffic": ("transport", "Transport", "運輸"),
    "transport": ("transport", "Transport", "運輸"),
    "parking": ("transport", "Transport", "運輸"),
    "mobility": ("transport", "Transport", "運輸"),
    "weather": ("climate-and-weather", "Climate and Weather", "氣候及天氣"),
    "climate": ("climate-and-weather", "Climate and Weather", "氣候及天氣"),
    "warnings": ("climate-and-weather", "Climate and Weather", "氣候及天氣"),
    "environment": ("environment", "Environment", "環境"),
    "air": ("environment", "Environment", "環境"),
    "air-quality": ("environment", "Environment", "環境"),
    "health": ("health", "Health", "衞生"),
    "covid-19": ("health", "Health", "衞生"),
    "covid19": ("health", "Health", "衞生"),
    "connectivity": ("information-technology-and-broadcasting",
                     "Information Technology and Broadcasting", "資訊科技及廣播"),
    "wifi": ("information-technology-and-broadcasting",
             "Information Technology and Broadcasting", "資訊科技及廣播"),
    "smart-village": ("city-management", "City Management", "城市管理"),
    "sensors": ("city-management", "City Management", "城市管理"),
}
_FORMATS = {
    "application/xml": "XML", "text/xml": "XML", "application/rss+xml": "RSS",
    "application/json": "JSON", "text/csv": "CSV", "application/geo+json": "GeoJSON",
    "text/plain": "TXT",
}


@dataclass(frozen=True, slots=True)
class FeedProfile:
    """What a feed's batches contain: (entity kind, metric) pairs."""

    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for k, _ in self.pairs))

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for _, m in self.pairs))


@cache
def feed_profile(feed_id: str) -> FeedProfile:
    """Entity kinds and metrics of a feed: from ``FeedSpec.extra`` (``entity_kinds`` and
    ``metrics``) when given, else learned by parsing one payload of the feed's simulator
    (pure and offline). Empty when neither is available."""
    from citypulse.feeds.registry import all_feeds

    spec = all_feeds().get(feed_id)
    if spec is None:
        return FeedProfile()
    kinds = spec.extra.get("entity_kinds")
    metrics = spec.extra.get("metrics")
    if kinds and metrics:
        return FeedProfile(tuple((str(k), str(m)) for k in kinds for m in metrics))
    try:
        from citypulse.simulate.registry import all_simulators

        sim = all_simulators().get(feed_id)
        if sim is None:
            return FeedProfile()
        at = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)
        batch = spec.parse(sim.emit(at, random.Random(7)), at)
        kind_of = {e.id: e.kind for e in batch.entities}
        cols = batch.observations.select(["entity_id", "metric"]).to_pydict()
        pairs = {
            (kind_of.get(e) or e.split(":", 1)[0], m)
            for e, m in zip(cols["entity_id"], cols["metric"], strict=True)
        }
        return FeedProfile(tuple(sorted(pairs)))
    except Exception:  # a simulator or parser problem must never break the catalogue
        return FeedProfile()


def _organization(spec: FeedSpec) -> dict[str, Any]:
    text = (spec.attribution or "").lower()
    prefix = spec.id.split("-", 1)[0]
    for keys, name, en, zh in _ORGS:
        if any(k in text for k in keys[:1]) or prefix in keys:
            return {"name": name, "title": en, "title_translated": {"en": en, "zh_Hant": zh}}
    return {"name": "citypulse", "title": "citypulse",
            "title_translated": {"en": "citypulse", "zh_Hant": "citypulse"}}


def _groups(spec: FeedSpec) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for topic in spec.topics:
        g = _GROUPS.get(topic.split(".", 1)[0].lower())
        if g is not None:
            out[g[0]] = {"name": g[0], "title": g[1],
                         "title_translated": {"en": g[1], "zh_Hant": g[2]}}
    return list(out.values())


def _interval(seconds: int) -> tuple[str, str]:
    if seconds % 3600 == 0 and seconds >= 3600:
        n = seconds // 3600
        return f"{n} hour{'s' if n != 1 else ''}", f"{n} 小時"
    if seconds % 60 == 0 and seconds >= 60:
        n = seconds // 60
        return f"{n} minute{'s' if n != 1 else ''}", f"{n} 分鐘"
    return f"{seconds} seconds", f"{seconds} 秒"


def _res(name_en: str, name_zh: str, url: str, fmt: str, desc_en: str, desc_zh: str,
         **extra: Any) -> dict[str, Any]:
    return {
        "name": name_en,
        "name_translated": {"en": name_en, "zh_Hant": name_zh},
        "description": desc_en,
        "description_translated": {"en": desc_en, "zh_Hant": desc_zh},
        "url": url,
        "format": fmt,
        **extra,
    }


def feed_package(spec: FeedSpec) -> Package:
    """The CKAN package of one feed."""
    every_en, every_zh = _interval(spec.interval_s)
    source = spec.attribution or "DATA.GOV.HK"
    notes_en = (
        f"{spec.title_en}: real-time feed polled every {every_en} from {spec.url}. citypulse "
        "keeps every observation and serves the latest values, time series and bulk "
        f"downloads (CSV, Parquet) of any date range. Source: {source}."
    )
    notes_zh = (
        f"{spec.title_zh}：citypulse 每 {every_zh}從 {spec.url} 讀取實時數據，保存所有觀測"
        f"數據，並提供最新數值、時間序列及任何日期範圍的批量下載（CSV、Parquet）。來源：{source}。"
    )
    profile = feed_profile(spec.id)
    resources: list[dict[str, Any]] = []
    if profile.pairs:
        for kind, metric in profile.pairs[:8]:
            query = urlencode({"metric": metric, "kind": kind})
            resources.append(_res(
                f"Latest {metric} ({kind})", f"最新 {metric}（{kind}）",
                f"/api/v1/latest?{query}", "JSON",
                f"Latest value of {metric} per {kind}, from the citypulse API.",
                f"每個 {kind} 的最新 {metric} 數值（citypulse API）。",
                resource_type="api", mimetype="application/json",
            ))
    else:
        resources.append(_res(
            "Feed status (JSON API)", "數據源狀態（JSON API）", "/api/v1/feeds",
            "JSON", "Health and freshness of every citypulse feed, this one included.",
            "所有 citypulse 數據源（包括此數據源）的狀態及更新時間。", resource_type="api",
            mimetype="application/json",
        ))
    fmt = _FORMATS.get(spec.media_type, spec.media_type.rsplit("/", 1)[-1].upper())
    resources.append(_res(
        f"Upstream feed ({fmt})", f"原始數據源（{fmt}）", spec.url, fmt,
        f"The live feed as published by {source}, updated every {every_en}.",
        f"由{source}發布的實時數據源，每 {every_zh}更新。",
        resource_type="api", mimetype=spec.media_type,
    ))
    for fmt_name, ext, mime in (("CSV", "csv", "text/csv"),
                                ("Parquet", "parquet", "application/vnd.apache.parquet")):
        resources.append(_res(
            f"Observations ({fmt_name})", f"觀測數據（{fmt_name}）",
            f"/api/v1/feeds/{spec.id}/observations.{ext}", fmt_name.upper()
            if fmt_name == "CSV" else fmt_name,
            "Stored observations (entity_id, metric, ts in UTC, value, label). Choose a range "
            "with ?start=&end= (ISO 8601); the default is the last 24 hours.",
            "已保存的觀測數據（entity_id、metric、ts（UTC）、value、label）。以 ?start=&end="
            "（ISO 8601）選擇日期範圍；預設為過去 24 小時。",
            resource_type="file", mimetype=mime, datastore_active=False,
        ))
    if spec.archive_url:
        resources.append(_res(
            "Historical archive (DATA.GOV.HK)", "歷史檔案（DATA.GOV.HK）",
            "https://api.data.gov.hk/v1/historical-archive/list-file-versions?"
            + urlencode({"url": spec.archive_url}),
            "JSON", "Past versions of the upstream file kept by DATA.GOV.HK.",
            "DATA.GOV.HK 保存的原始檔案歷史版本。", resource_type="api",
        ))
    tags = [slug(t.replace(".", "-")) for t in spec.topics]
    tags += ["real-time", fmt.lower(), spec.id.split("-", 1)[0]]
    source_dataset = spec.extra.get("dataset")
    extras = [
        {"key": "feed_id", "value": spec.id},
        {"key": "update_frequency", "value": f"every {every_en}"},
        {"key": "attribution", "value": source},
        {"key": "upstream_url", "value": spec.url},
    ]
    if source_dataset:
        extras.append({"key": "source_dataset", "value": str(source_dataset)})
    return {
        "name": slug(spec.id),
        "title": spec.title_en,
        "title_translated": {"en": spec.title_en, "zh_Hant": spec.title_zh},
        "notes": notes_en,
        "notes_translated": {"en": notes_en, "zh_Hant": notes_zh},
        "organization": _organization(spec),
        "groups": _groups(spec),
        "tags": [{"name": t} for t in dict.fromkeys(tags) if t],
        "resources": resources,
        "license_id": licence_id_for(spec.licence),
        "url": f"https://data.gov.hk/en-data/dataset/{source_dataset}" if source_dataset else None,
        "maintainer": source,
        "extras": extras,
    }


def feed_packages(feeds: Mapping[str, FeedSpec] | None = None) -> list[Package]:
    if feeds is None:
        from citypulse.feeds.registry import all_feeds

        feeds = all_feeds()
    return [feed_package(spec) for spec in feeds.values()]


def sync_feed_datasets(db: CatalogueDB, feeds: Mapping[str, FeedSpec] | None = None) -> int:
    """Make the catalogue's local datasets match the feed registry: new feeds appear,
    changed ones are updated (``metadata_modified`` moves only then), removed ones go."""
    packages = feed_packages(feeds)
    changed = db.upsert_packages(packages, source=LOCAL_SOURCE, keep_times=True)
    wanted = {p["name"] for p in packages}
    gone = [n for n in db.source_packages(LOCAL_SOURCE) if n not in wanted]
    if gone:
        changed += db.delete_packages(gone)
    return changed
