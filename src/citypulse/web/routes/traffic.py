"""Time formatting shared by pages (``hkt``, ``iso``).

``/dashboards/traffic`` itself is now the declarative ``traffic`` dashboard
(``web/dashboards/traffic.yaml``): its road-link speed map is the ``links`` tile (template
``dashboards/tiles/traffic_links.html``, kept live by ``static/js/traffic.js``), beside region
summaries, journey times, detector readings and traffic news. This module keeps no route.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from citypulse.feeds.base import HKT

STALE_AFTER = timedelta(minutes=10)
"""Speed map data older than this is marked stale (TD refreshes it every 2 minutes)."""


def hkt(ts: datetime | None) -> str:
    """``2016-10-14 18:52`` in Hong Kong time (pages say HKT once, in a heading)."""
    return ts.astimezone(HKT).strftime("%Y-%m-%d %H:%M") if ts is not None else ""


def iso(ts: datetime | None) -> str:
    return ts.isoformat() if ts is not None else ""
