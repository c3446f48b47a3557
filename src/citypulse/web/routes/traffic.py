"""``/dashboards/traffic``: road speeds and saturation on a map, a chart and a table.

The page is complete without JavaScript: the server renders the current state as a table
(also the accessible view of the map). ``static/js/traffic.js`` then draws the links with
Leaflet from ``/api/v1/traffic/links.geojson`` (no tile server: our own geometry only), plots a
selected link with uPlot, and re-colours everything when the SSE stream announces new data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from citypulse.feeds.base import HKT
from citypulse.feeds.reference import REGION_NAMES
from citypulse.model import now_utc
from citypulse.web.i18n import pick
from citypulse.web.routes.api import SATURATION_LEVELS, SPEED_METRIC, get_store, traffic_links
from citypulse.web.templating import render, request_lang

router = APIRouter(include_in_schema=False)

STALE_AFTER = timedelta(minutes=10)
"""Data older than this is marked stale (TD refreshes the speed map every 2 minutes)."""
LIVE_FEEDS = ("td-speedmap",)
"""Feeds whose ``traffic`` messages make the page refetch the links."""
CHART_HOURS = 3


@dataclass(slots=True)
class LinkRow:
    """One table row, with display strings prepared here (cheaper than in the template)."""

    id: str
    name: str
    region: str
    speed: str
    saturation: str | None
    ts: str
    ts_iso: str


def hkt(ts: datetime | None) -> str:
    """``2016-10-14 18:52`` in Hong Kong time (the page says HKT once, in the heading)."""
    return ts.astimezone(HKT).strftime("%Y-%m-%d %H:%M") if ts is not None else ""


def iso(ts: datetime | None) -> str:
    return ts.isoformat() if ts is not None else ""


def traffic_context(request: Request) -> dict[str, Any]:
    lang = request_lang(request)
    collection = traffic_links(get_store(request))
    rows: list[LinkRow] = []
    counts = dict.fromkeys(SATURATION_LEVELS, 0)
    speeds: list[float] = []
    for f in collection["features"]:
        p = f["properties"]
        if p["saturation"] in counts:
            counts[p["saturation"]] += 1
        if p["speed_kmh"] is not None:
            speeds.append(p["speed_kmh"])
        rows.append(
            LinkRow(
                id=p["id"],
                name=pick(lang, p["name_en"], p["name_zh"]) or p["id"],
                region=p.get("region") or "",
                speed="–" if p["speed_kmh"] is None else f"{p['speed_kmh']:.0f}",
                saturation=p["saturation"],
                ts=hkt(p["ts"]),
                ts_iso=iso(p["ts"]),
            )
        )
    rows.sort(key=lambda r: (r.region, r.id))
    regions = sorted({r.region for r in rows})
    region_names = {code: pick(lang, en, zh) for code, (en, zh) in REGION_NAMES.items()}
    for code in regions:
        region_names.setdefault(code, code or "?")
    updated: datetime | None = collection["updated"]
    # Rows show the time only when they share the date of the newest observation.
    day = hkt(updated)[:10]
    for r in rows:
        if day and r.ts.startswith(day):
            r.ts = r.ts[11:]
    now = now_utc()
    return {
        "rows": rows,
        "region_names": region_names,
        "counts": counts,
        "n_links": len(rows),
        "n_with_data": len(speeds),
        "mean_speed": round(sum(speeds) / len(speeds)) if speeds else None,
        "updated": hkt(updated),
        "updated_iso": iso(updated),
        "stale": updated is None or now - updated > STALE_AFTER,
        "stale_after_s": int(STALE_AFTER.total_seconds()),
        "metric": SPEED_METRIC,
        "live_feeds": ",".join(LIVE_FEEDS),
        "chart_hours": CHART_HOURS,
        "selected": rows[0].id if rows else "",
    }


@router.get("/dashboards/traffic", response_class=HTMLResponse)
def traffic_page(request: Request) -> HTMLResponse:
    return render(request, "dashboards/traffic.html", traffic_context(request))
