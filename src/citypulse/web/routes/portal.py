"""JSON API of the Blueprint portal: ``/api/v1/initiatives`` (list with the same filters as the
HTML list, and one initiative with its edit history) and ``/api/v1/areas``. Pydantic response
models document the shapes in OpenAPI; bodies are serialised with orjson (app default)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from citypulse.blueprint.db import EditRecord
from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.models import Initiative
from citypulse.blueprint.progress import Progress
from citypulse.blueprint.query import FilterError, parse_filters
from citypulse.blueprint.registry import AREAS, area_info
from citypulse.blueprint.web import get_portal

shipped_blueprint()  # fail at start-up on broken YAML (see home.py)

router = APIRouter(prefix="/api/v1", tags=["blueprint"])


class MilestoneOut(BaseModel):
    date: str = Field(description="Loose date: 2018, 2018-07, 2018-07-24, 2020-Q4, undated ...")
    event: str


class FigureOut(BaseModel):
    name: str
    value: int | float | str
    unit: str
    as_of: str
    source: str
    note: str | None = None


class InitiativeOut(BaseModel):
    id: str
    area: str
    area_name_en: str
    area_name_zh_hant: str
    title_en: str
    title_zh_hant: str | None
    summary_en: str
    summary_zh_hant: str | None
    owner: str
    status: str
    status_as_of: str
    first_blueprint: int | None
    new_in_blueprint_2: bool | None
    origin: str | None
    evidence: str = Field(description="sourced | partly_sourced | concept_only | seed_only")
    area_basis: str = Field(description="source | inferred")
    notes: str | None
    milestones: list[MilestoneOut]
    figures: list[FigureOut]
    sources: list[str]
    version: int = Field(description="Number of office edits applied over the shipped data")
    url: str


class EditOut(BaseModel):
    version: int
    at: datetime
    username: str
    note: str
    changed: list[str]
    before: dict[str, Any]
    after: dict[str, Any]


class InitiativeDetailOut(InitiativeOut):
    history: list[EditOut]


class InitiativeListOut(BaseModel):
    total: int
    page: int
    pages: int
    per_page: int
    items: list[InitiativeOut]


class ProgressOut(BaseModel):
    total: int
    delivered: int
    underway: int
    planned: int
    unknown: int
    delivered_pct: float
    by_status: dict[str, int]


class AreaOut(BaseModel):
    id: str
    kind: str
    name_en: str
    name_zh_hant: str
    description_en: str
    description_zh_hant: str
    completeness_note: str | None
    progress: ProgressOut


class AreaListOut(BaseModel):
    overall: ProgressOut
    coverage_note: str
    items: list[AreaOut]


def _initiative(item: Initiative, version: int, base: str) -> dict[str, Any]:
    info = area_info(item.area)
    assert info is not None
    return {
        "id": item.id,
        "area": item.area,
        "area_name_en": info.name_en,
        "area_name_zh_hant": info.name_zh,
        "title_en": item.title_en,
        "title_zh_hant": item.title_zh_hant,
        "summary_en": item.summary,
        "summary_zh_hant": item.summary_zh_hant,
        "owner": item.owner,
        "status": item.status,
        "status_as_of": item.status_as_of,
        "first_blueprint": item.first_blueprint,
        "new_in_blueprint_2": item.new_in_blueprint_2,
        "origin": item.origin,
        "evidence": item.evidence,
        "area_basis": item.area_basis,
        "notes": item.notes,
        "milestones": [m.model_dump() for m in item.milestones],
        "figures": [f.model_dump() for f in item.figures],
        "sources": list(item.sources),
        "version": version,
        "url": f"{base}/initiatives/{item.id}",
    }


def _edit(e: EditRecord) -> dict[str, Any]:
    return {
        "version": e.version,
        "at": e.at,
        "username": e.username,
        "note": e.note,
        "changed": sorted(e.after),
        "before": e.before,
        "after": e.after,
    }


def _progress(p: Progress) -> dict[str, Any]:
    return {
        "total": p.total,
        "delivered": p.delivered,
        "underway": p.underway,
        "planned": p.planned,
        "unknown": p.unknown,
        "delivered_pct": round(p.delivered_pct, 1),
        "by_status": p.by_status,
    }


@router.get("/initiatives", response_model=InitiativeListOut)
async def api_initiatives(
    request: Request,
    q: str | None = Query(None, description="Full-text search, English or Chinese"),
    area: list[str] | None = Query(None, description="Area/chapter id (repeatable)"),
    status: list[str] | None = Query(None, description="Status (repeatable)"),
    owner: str | None = Query(None, description="Owner, whole word, e.g. TD or OGCIO"),
    year: str | None = Query(None, description="Year with a dated milestone"),
    evidence: list[str] | None = Query(None, description="Evidence level (repeatable)"),
    blueprint: str | None = Query(None, description="2017 | 2020 | later"),
    sort: str | None = Query(None, description="relevance, id, title, status, updated, area"),
    page: str | None = Query(None, description="Page number from 1"),
    per_page: str | None = Query(None, description="Items per page, 1-200 (default 20)"),
) -> dict[str, Any]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    try:
        filters = parse_filters(params)
        portal = get_portal(request)
        result = portal.select(filters)
    except FilterError as exc:
        raise HTTPException(400, str(exc)) from exc
    base = str(request.base_url).rstrip("/")
    return {
        "total": result.total,
        "page": result.page,
        "pages": result.pages,
        "per_page": result.per_page,
        "items": [_initiative(i, portal.version(i.id), base) for i in result.items],
    }


@router.get("/initiatives/{initiative_id}", response_model=InitiativeDetailOut)
async def api_initiative(request: Request, initiative_id: str) -> dict[str, Any]:
    portal = get_portal(request)
    item = portal.get(initiative_id)
    if item is None:
        raise HTTPException(404, f"unknown initiative {initiative_id!r}")
    out = _initiative(item, portal.version(item.id), str(request.base_url).rstrip("/"))
    out["history"] = [_edit(e) for e in portal.history(item.id)]
    return out


def _area(request: Request, area_id: str) -> dict[str, Any]:
    portal = get_portal(request)
    info = area_info(area_id)
    assert info is not None
    yaml_area = next(a for a in portal.data.areas if a.id == area_id)
    return {
        "id": info.id,
        "kind": info.kind,
        "name_en": info.name_en,
        "name_zh_hant": info.name_zh,
        "description_en": yaml_area.description,
        "description_zh_hant": info.description_zh,
        "completeness_note": portal.data.completeness(area_id),
        "progress": _progress(portal.progress(area_id)),
    }


@router.get("/areas", response_model=AreaListOut)
async def api_areas(request: Request) -> dict[str, Any]:
    portal = get_portal(request)
    return {
        "overall": _progress(portal.progress()),
        "coverage_note": portal.data.coverage_note,
        "items": [_area(request, a.id) for a in AREAS],
    }


@router.get("/areas/{area_id}", response_model=AreaOut)
async def api_area(request: Request, area_id: str) -> dict[str, Any]:
    if area_info(area_id) is None:
        raise HTTPException(404, f"unknown area {area_id!r}")
    return _area(request, area_id)
