"""Output escaping: hostile strings (script tags, quotes, event handlers, a ``</script>`` that
would close a JSON island) stored as entity names, event titles and bodies, feed ids and
errors, quarantine reasons and initiative text must come out of every page inert.

Checked on the HTML itself (no executable marker survives; the escaped form is there, so the
data really reached the page) for every page, dashboard tile and fragment; the browser half
(``test_security_browser.py``) also renders them with the CSP turned off, so escaping is proven
on its own, not only by the policy.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citypulse.config import Settings
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.ingest.scheduler import DemoSource
from citypulse.model import Batch, Event, now_utc
from citypulse.simulate.registry import all_simulators
from citypulse.store.base import PayloadRecord
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.app import create_app

# Markers that would execute (or inject markup) if they reached the page unescaped.
HOSTILE_EN = "<script>alert('xss-en')</script>\"><img src=x onerror=alert(1)>'"
HOSTILE_ZH = "中文</script><script>alert(\"xss-zh\")</script><svg onload=alert(2)>"
HOSTILE_ID = "feed-<script>alert(3)</script>"
DANGEROUS = [
    "<script>alert(",
    "<img src=x onerror",
    "<svg onload",
    "</script><script>",
]
ESCAPED = re.compile(
    r"(&lt;script&gt;alert\(|\\u003cscript\\u003ealert\(|&lt;svg onload|\\u003csvg onload)"
)
SIM_FEEDS = [
    "td-speedmap", "td-traffic-news", "hko-rhrread", "hko-warnsum", "epd-aqhi",
    "carpark-info", "carpark-vacancy", "smart-village", "td-journey-time",
]


def fill(store: DuckDBStore, data_dir: Path, *, hostile: bool = True) -> None:
    """Simulated recent data for the dashboards, then (``hostile``) hostile names and texts
    over it."""
    pipeline = Pipeline(store, RawArchive(data_dir / "archive"))
    sims = [s for f, s in all_simulators().items() if f in SIM_FEEDS]
    DemoSource(sims, pipeline, backfill_hours=1, backfill_max_payloads=2, seed=3).backfill()
    if not hostile:
        return
    now = now_utc()
    entities = store.entities()
    store.upsert_entities(
        [dataclasses.replace(e, name_en=HOSTILE_EN, name_zh=HOSTILE_ZH) for e in entities]
    )
    events = store.events(now - timedelta(days=30), now + timedelta(days=1))
    hostile_events = [
        dataclasses.replace(e, title_en=HOSTILE_EN, title_zh=HOSTILE_ZH,
                            body_en=HOSTILE_EN, body_zh=HOSTILE_ZH)
        for e in events
    ]
    for kind, severity in (("weather-warning", "high"), ("traffic-news", "moderate"),
                           ("alert", "severe"), ("detection", "moderate")):
        hostile_events.append(
            Event(f"hostile-{kind}", kind, severity, now - timedelta(minutes=5),
                  title_en=HOSTILE_EN, title_zh=HOSTILE_ZH, body_en=HOSTILE_EN,
                  body_zh=HOSTILE_ZH, districts=("central_western",), source=HOSTILE_ID,
                  properties={"code": HOSTILE_EN, "rule": HOSTILE_EN})
        )
    store.append(Batch.build("td-traffic-news", b"hostile events", now, events=hostile_events))
    store.record_fetch(HOSTILE_ID, at=now, ok=False, error=HOSTILE_EN)
    store.record_fetch("td-speedmap", at=now, ok=False, error=HOSTILE_EN)
    store.record_payload(PayloadRecord("ab" * 32, "td-speedmap", now, "quarantined",
                                       HOSTILE_EN, "td-speedmap/x.xml", 0))


def hostile_portal(app: FastAPI, data_dir: Path) -> str | None:
    """An initiative edited to hostile text (the portal's own code, when it is there)."""
    try:
        from argon2 import PasswordHasher

        from citypulse.blueprint.db import PortalDB
        from citypulse.blueprint.loader import shipped_blueprint
        from citypulse.blueprint.service import Portal
    except ImportError:
        return None
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    portal = Portal(shipped_blueprint(), PortalDB(data_dir / "portal.sqlite", hasher=hasher))
    user = portal.db.add_user("mallory", "correct horse battery", "editor")
    item = portal.initiatives()[0]
    portal.save_edit(
        item.id,
        portal.version(item.id),
        user,
        note=HOSTILE_EN,
        changes={"title_en": HOSTILE_EN, "title_zh_hant": HOSTILE_ZH,
                 "summary": HOSTILE_EN, "owner": HOSTILE_ZH},
    )
    app.state.portal = portal
    return item.id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str | None]]:
    data_dir = tmp_path_factory.mktemp("hostile")
    store = DuckDBStore(str(data_dir / "citypulse.duckdb"))
    fill(store, data_dir)
    app = create_app(Settings(data_dir=data_dir), store)
    initiative = hostile_portal(app, data_dir)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, initiative
    store.close()


def pages(client: TestClient, initiative: str | None) -> list[str]:
    found = ["/", "/status", "/alerts", "/dashboards", "/datasets", "/districts",
             "/districts/central-and-western", "/fragments/warnings", "/initiatives"]
    if initiative:
        found += [f"/initiatives/{initiative}", "/initiatives/updates.atom"]
    chinese = [f"/zh-hant{p}" for p in found]  # the same templates with the zh names
    for d in client.get("/api/v1/dashboards").json():
        found.append(d["url"])
        found += [f"{d['url']}/tiles/{t['id']}" for t in d["tiles"]]
        chinese.append(f"/zh-hant{d['url']}")
    return [*found, *chinese]


def test_hostile_strings_render_inert(site: tuple[TestClient, str | None]) -> None:
    client, initiative = site
    shown: dict[str, list[str]] = {}
    checked = 0
    for path in pages(client, initiative):
        r = client.get(path)
        assert r.status_code < 500, f"{path}: {r.status_code}"
        text = r.text
        for marker in DANGEROUS:
            assert marker not in text, f"{path} contains unescaped {marker!r}"
        if ESCAPED.search(text):
            shown.setdefault(path, [])
        checked += 1
    # The hostile data did reach the pages (else this test would prove nothing).
    assert "/status" in shown, "feed ids/errors not shown escaped on /status"
    assert "/alerts" in shown, "alert titles not shown escaped on /alerts"
    assert any(p.startswith("/dashboards/") and "/tiles/" in p for p in shown), shown
    if initiative:
        assert f"/initiatives/{initiative}" in shown
    print(f"{checked} pages checked, hostile text shown escaped on {len(shown)}")


def test_hostile_strings_are_plain_data_in_json(site: tuple[TestClient, str | None]) -> None:
    client, _ = site
    r = client.get("/api/v1/entities", params={"limit": 5})
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()[0]["name_en"] == HOSTILE_EN  # stored and returned as data, unchanged
    assert r.headers["x-content-type-options"] == "nosniff"

