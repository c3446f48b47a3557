"""``/alerts`` (open and recent alerts, filterable, bilingual) and the alerts API:
``/api/v1/alerts``, ``/api/v1/alerts/rules``, ``/api/v1/alerts/deliveries``,
``/api/v1/alerts/engine``.

Alerts are ``alert`` events in the store (written by :mod:`citypulse.alerts.engine`), so the
page and API work from the store alone; rules, webhook deliveries and engine counters come from
``app.state.alert_engine`` when ``citypulse serve`` runs one.

Live banner: ``templates/alerts/_banner.html`` (include it in any page) shows open alerts of
``high`` severity and above, server-rendered when the page passes ``banner_alerts`` and kept
current by ``/alerts/alerts.js`` over the SSE topic ``alerts``. The script and stylesheet are
served from this module (same origin, no inline code: works under a strict CSP).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse

from citypulse.alerts.engine import ALERT_KIND, alert_json
from citypulse.alerts.rules import (
    SEVERITIES,
    SEVERITY_RANK,
    RuleError,
    RuleSet,
    rules_for_data_dir,
    rules_json,
)
from citypulse.model import Event, now_utc, utc
from citypulse.store.base import TimeSeriesStore
from citypulse.web.routes.api import get_store, json_response
from citypulse.web.routes.traffic import hkt, iso
from citypulse.web.templating import TEMPLATES_DIR, render, request_lang

router = APIRouter()

ASSETS = TEMPLATES_DIR / "alerts"
MAX_LIMIT = 1000
DEFAULT_DAYS = 7
PAGE_DAYS = (1, 7, 30)
BANNER_MIN_SEVERITY = "high"
StateName = Literal["open", "closed", "all"]


def ruleset(request: Request) -> RuleSet | None:
    """The rules in force: the engine's, else the data dir's file or the defaults."""
    engine = getattr(request.app.state, "alert_engine", None)
    if engine is not None:
        rules: RuleSet = engine.rules
        return rules
    cached = getattr(request.app.state, "alert_rules", None)
    if cached is None:
        try:
            cached = rules_for_data_dir(Path(request.app.state.settings.data_dir))
        except RuleError:
            return None
        request.app.state.alert_rules = cached
    return cached if isinstance(cached, RuleSet) else None


def query_alerts(
    store: TimeSeriesStore,
    *,
    state: StateName = "all",
    severity: str | None = None,
    rule: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 200,
    now: datetime | None = None,
) -> list[Event]:
    """Alerts overlapping [start, end), newest first. ``open``: still open at ``end``."""
    now = now or now_utc()
    end = end or now
    start = start or end - timedelta(days=DEFAULT_DAYS)
    found = store.events(start, end, kind=ALERT_KIND, active_only=(state == "open"))
    minimum = SEVERITY_RANK.get(severity or "info", 0)
    out = []
    for ev in found:
        if SEVERITY_RANK.get(ev.severity, 0) < minimum:
            continue
        if rule and ev.properties.get("rule_id") != rule:
            continue
        if state == "closed" and (ev.ends_at is None or ev.ends_at > end):
            continue
        out.append(ev)
    out.sort(key=lambda e: (e.ends_at is None, e.starts_at), reverse=True)
    return out[:limit]


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(400, f"{name} needs a timezone offset (e.g. +08:00 or Z)")
    return utc(value)


SeverityQ = Annotated[
    Literal["info", "low", "moderate", "high", "severe"] | None,
    Query(description="Minimum severity (info < low < moderate < high < severe)"),
]


@router.get("/api/v1/alerts", tags=["alerts"], summary="Alerts (open and recent), newest first")
def api_alerts(
    request: Request,
    state: Annotated[StateName, Query(description="open, closed or all")] = "all",
    severity: SeverityQ = None,
    rule: Annotated[str | None, Query(max_length=64, description="Rule id")] = None,
    start: Annotated[datetime | None, Query(description="Default: end minus 7 days")] = None,
    end: Annotated[datetime | None, Query(description="Default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
) -> Response:
    end_utc = _aware("end", end)
    start_utc = _aware("start", start)
    if start_utc and end_utc and start_utc >= end_utc:
        raise HTTPException(400, "start must be before end")
    found = query_alerts(
        get_store(request), state=state, severity=severity, rule=rule, start=start_utc,
        end=end_utc, limit=limit,
    )
    return json_response([alert_json(a) for a in found])


@router.get("/api/v1/alerts/rules", tags=["alerts"], summary="The alert rules in force")
def api_rules(request: Request) -> Response:
    rules = ruleset(request)
    if rules is None:
        raise HTTPException(503, "the alert rules file is invalid; see the server log")
    return json_response(rules_json(rules, with_webhooks=True))


@router.get("/api/v1/alerts/deliveries", tags=["alerts"],
            summary="Recent webhook deliveries and their outcome")
def api_deliveries(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Response:
    engine = getattr(request.app.state, "alert_engine", None)
    dispatcher = getattr(engine, "dispatcher", None)
    return json_response(dispatcher.deliveries(limit) if dispatcher is not None else [])


@router.get("/api/v1/alerts/engine", tags=["alerts"], summary="Alert engine counters")
def api_engine(request: Request) -> Response:
    engine = getattr(request.app.state, "alert_engine", None)
    if engine is None:
        return json_response({"running": False})
    return json_response({"running": True, **engine.stats()})


# --- assets -------------------------------------------------------------------------------

_ASSET_TYPES = {
    "alerts.js": "text/javascript; charset=utf-8",
    "alerts.css": "text/css; charset=utf-8",
}


@router.get("/alerts/{name}", include_in_schema=False)
def asset(name: str) -> Response:
    media = _ASSET_TYPES.get(name)
    if media is None:
        raise HTTPException(404)
    return Response(
        (ASSETS / name).read_bytes(),
        media_type=media,
        headers={"Cache-Control": "public, max-age=300"},
    )


# --- page ---------------------------------------------------------------------------------


def banner_alerts(store: TimeSeriesStore) -> list[Event]:
    """Open alerts for the live banner (server-rendered first paint)."""
    return query_alerts(store, state="open", severity=BANNER_MIN_SEVERITY, limit=5)


def district_names(districts: tuple[str, ...], lang: str) -> list[str]:
    """District ids or spellings -> names in ``lang`` (as the district pages name them)."""
    try:
        from citypulse.web.dashboards.districts import district_id, district_name
    except ImportError:  # pragma: no cover - the districts table is optional here
        return list(districts)
    return [district_name(district_id(d) or d, lang) for d in districts]


def alert_row(ev: Event, rules: RuleSet | None, now: datetime, lang: str) -> dict[str, Any]:
    rid = str(ev.properties.get("rule_id", ""))
    rule = rules.rule(rid) if rules else None
    open_ = ev.ends_at is None or ev.ends_at > now
    return {
        "event": ev,
        "rule_id": rid,
        "rule_en": rule.title_en if rule else rid,
        "rule_zh": rule.title_zh if rule else rid,
        "open": open_,
        "starts": {"text": hkt(ev.starts_at), "iso": iso(ev.starts_at)},
        "ends": {"text": hkt(ev.ends_at), "iso": iso(ev.ends_at)},
        "districts": district_names(ev.districts, lang),
        "value": ev.properties.get("value"),
        "threshold": ev.properties.get("threshold"),
    }


@router.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
def alerts_page(
    request: Request,
    state: StateName = "all",
    severity: str | None = None,
    rule: str | None = None,
    days: int = DEFAULT_DAYS,
) -> HTMLResponse:
    if severity not in SEVERITIES:
        severity = None
    if days not in PAGE_DAYS:
        days = DEFAULT_DAYS
    if state not in ("open", "closed", "all"):
        state = "all"
    store = get_store(request)
    rules = ruleset(request)
    if rules is not None and rule and rules.rule(rule) is None:
        rule = None
    now = now_utc()
    found = query_alerts(
        store, state=state, severity=severity, rule=rule,
        start=now - timedelta(days=days), end=now, limit=MAX_LIMIT, now=now,
    )
    open_count = len(query_alerts(store, state="open", limit=MAX_LIMIT, now=now))
    return render(
        request,
        "alerts/list.html",
        {
            "rows": [alert_row(ev, rules, now, request_lang(request)) for ev in found],
            "rules": rules.rules if rules else (),
            "rules_error": rules is None,
            "filters": {"state": state, "severity": severity, "rule": rule, "days": days},
            "severities": SEVERITIES,
            "page_days": PAGE_DAYS,
            "open_count": open_count,
            "banner_alerts": banner_alerts(store),
            "checked": hkt(now),
            "checked_iso": iso(now),
        },
    )
