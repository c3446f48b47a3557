"""``/status``: is every feed healthy, what was quarantined, and is this the simulator?

Operators and users see the same page: a feed that cannot be reached is shown as down, never
hidden or faked. The page refreshes its feed table every 30 s through htmx when JavaScript is on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from citypulse.model import now_utc
from citypulse.web.routes.api import feed_statuses, get_store
from citypulse.web.routes.traffic import hkt, iso
from citypulse.web.templating import render

router = APIRouter(include_in_schema=False)

QUARANTINE_LIMIT = 50


def duration_text(seconds: float | None) -> str:
    """Compact, language-neutral age: 45 s, 12 min, 3.5 h, 12 d."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{round(seconds / 86400):,} d"


def interval_text(seconds: int | None) -> str:
    """A poll interval in its natural unit: 2 min, 1 h, 1 d."""
    if not seconds:
        return ""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@router.get("/status", response_class=HTMLResponse)
def status_page(request: Request) -> HTMLResponse:
    store = get_store(request)
    settings = request.app.state.settings
    now = now_utc()
    feeds = feed_statuses(store, getattr(settings, "feeds", ()) or (), now)
    quarantined = store.payloads(status="quarantined", limit=QUARANTINE_LIMIT)
    counts: dict[str, int] = {}
    for f in feeds:
        counts[f.status] = counts.get(f.status, 0) + 1

    def when(ts: datetime | None) -> dict[str, Any]:
        return {"text": hkt(ts), "iso": iso(ts)}

    return render(
        request,
        "status.html",
        {
            "feeds": feeds,
            "counts": counts,
            "quarantined": quarantined,
            "quarantine_limit": QUARANTINE_LIMIT,
            "when": when,
            "duration": duration_text,
            "interval": interval_text,
            "checked": hkt(now),
            "checked_iso": iso(now),
            "store_kind": type(store).__name__,
        },
    )
