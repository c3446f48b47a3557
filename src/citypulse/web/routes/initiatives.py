"""Initiative pages: the filterable list (with CSV export and an Atom feed of updates), one page
per initiative with its milestones and edit history, and the digital office's edit form with
optimistic concurrency (a stale form gets a 409 conflict page, never a silent overwrite)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from citypulse.blueprint.atom import build_feed
from citypulse.blueprint.db import VersionConflict
from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.models import EDITABLE_FIELDS, EVIDENCE_LEVELS, STATUSES, Initiative
from citypulse.blueprint.query import (
    BLUEPRINTS,
    SORTS,
    FilterError,
    Filters,
    Page,
    milestone_years,
    owner_codes,
    parse_filters,
)
from citypulse.blueprint.registry import AREAS, area_info
from citypulse.blueprint.service import (
    EditRejected,
    FieldError,
    editable_values,
    milestones_text,
    parse_edit_form,
)
from citypulse.blueprint.web import (
    CSRF_FIELD,
    STATUS_LABELS,
    cached_page,
    csrf_ok,
    error_page,
    get_portal,
    page,
    require,
)
from citypulse.web.i18n import gettext, localized_path
from citypulse.web.templating import request_lang

shipped_blueprint()  # fail at start-up on broken YAML (see home.py)

router = APIRouter(include_in_schema=False)
PER_PAGE_CHOICES = (10, 20, 50, 100)


def query_lists(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def _bad_filter(request: Request, exc: FilterError) -> Response:
    return error_page(request, 400, "Bad request", str(exc))


def _not_found(request: Request) -> Response:
    lang = request_lang(request)
    return error_page(
        request, 404, "Page not found", gettext(lang, "There is no initiative with this id.")
    )


def _years(items: tuple[Initiative, ...]) -> list[int]:
    years: set[int] = set()
    for item in items:
        years |= milestone_years(item)
    return sorted(years, reverse=True)


@router.get("/initiatives", response_class=HTMLResponse)
async def list_page(request: Request) -> Response:
    lang = request_lang(request)
    try:
        filters = parse_filters(query_lists(request))
        canonical = filters.query_string()
        if request.url.query and canonical != "?" + request.url.query:
            # The filter form submits every field, empty ones too: redirect to the short,
            # canonical address so shared links stay clean (?area=living, not ?q=&area=living&...).
            return RedirectResponse(localized_path("/initiatives", lang) + canonical, 302)
        portal = get_portal(request)
        result = portal.select(filters, lang=lang)
    except FilterError as exc:
        return _bad_filter(request, exc)
    return await cached_page(request, None, lambda: _list_page(request, filters, result))


async def _list_page(request: Request, filters: Filters, result: Page) -> Response:
    portal = get_portal(request)
    everything = portal.initiatives()
    return page(
        request,
        "portal/list.html",
        {
            "filters": filters,
            "result": result,
            "areas": AREAS,
            "statuses": STATUSES,
            "evidence_levels": EVIDENCE_LEVELS,
            "blueprints": BLUEPRINTS,
            "sorts": SORTS,
            "owners": owner_codes(everything),
            "years": _years(everything),
            "per_page_choices": PER_PAGE_CHOICES,
            "total_all": len(everything),
            "coverage_note": portal.data.coverage_note,
        },
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """CSV cell safe to open in a spreadsheet: text that would start a formula gets a quote."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


CSV_COLUMNS = (
    "id",
    "area",
    "title_en",
    "title_zh_hant",
    "status",
    "status_as_of",
    "owner",
    "first_blueprint",
    "new_in_blueprint_2",
    "evidence",
    "area_basis",
    "summary",
    "summary_zh_hant",
    "milestones",
    "sources",
    "url",
)


@router.get("/initiatives.csv")
async def list_csv(request: Request) -> Response:
    try:
        filters = parse_filters(query_lists(request))
        result = get_portal(request).select(filters, lang=request_lang(request), paginate=False)
    except FilterError as exc:
        return Response(f"Bad request: {exc}\n", status_code=400, media_type="text/plain")
    buf = io.StringIO()
    buf.write("\ufeff")  # BOM: spreadsheet programs then read the Chinese text as UTF-8
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    base = str(request.base_url).rstrip("/")
    for i in result.items:
        row = [
            i.id,
            i.area,
            i.title_en,
            i.title_zh_hant,
            i.status,
            i.status_as_of,
            i.owner,
            i.first_blueprint,
            i.new_in_blueprint_2,
            i.evidence,
            i.area_basis,
            i.summary,
            i.summary_zh_hant,
            "; ".join(f"{m.date}: {m.event}" for m in i.milestones),
            " | ".join(i.sources),
            f"{base}/initiatives/{i.id}",
        ]
        writer.writerow([_cell(v) for v in row])
    return Response(
        buf.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="initiatives.csv"'},
    )


@router.get("/initiatives/updates.atom")
async def updates_feed(request: Request) -> Response:
    lang = request_lang(request)
    portal = get_portal(request)
    body = build_feed(
        portal.updates(50),
        base_url=str(request.base_url),
        self_path=localized_path("/initiatives/updates.atom", lang),
        lang=lang,
        title=gettext(lang, "Smart City Blueprint: progress updates"),
        edit_title=gettext(lang, "%(title)s: updated by %(user)s"),
        milestone_title=gettext(lang, "%(title)s: milestone %(date)s"),
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/initiatives/{initiative_id}", response_class=HTMLResponse)
async def detail_page(request: Request, initiative_id: str) -> Response:
    portal = get_portal(request)
    item = portal.get(initiative_id)
    if item is None:
        return _not_found(request)
    saved = request.query_params.get("saved", "")

    async def build() -> Response:
        assert item is not None
        return page(
            request,
            "portal/detail.html",
            {
                "item": item,
                "area": area_info(item.area),
                "version": portal.version(initiative_id),
                "history": list(reversed(portal.history(initiative_id))),
                "saved": saved.isdigit() and int(saved) == portal.version(initiative_id),
                "field_note": portal.data.field_note,
            },
        )

    return await cached_page(request, None, build)


def _form_values(item: Initiative) -> dict[str, str]:
    values = editable_values(item)
    out = {k: "" if v is None else str(v) for k, v in values.items() if isinstance(v, str | None)}
    out["milestones"] = milestones_text(item)
    out["sources"] = "\n".join(item.sources)
    return out


def _edit_context(
    item: Initiative,
    version: int,
    values: Mapping[str, str],
    errors: list[FieldError],
    note: str = "",
) -> dict[str, Any]:
    by_field: dict[str, list[FieldError]] = {}
    for e in errors:
        by_field.setdefault(e.name, []).append(e)
    return {
        "item": item,
        "version": version,
        "values": values,
        "errors": errors,
        "errors_by_field": by_field,
        "note": note,
        "statuses": STATUSES,
        "status_labels": STATUS_LABELS,
    }


@router.get("/initiatives/{initiative_id}/edit", response_class=HTMLResponse)
async def edit_form(request: Request, initiative_id: str) -> Response:
    portal = get_portal(request)
    item = portal.get(initiative_id)
    if item is None:
        return _not_found(request)
    session = require(request, "editor")
    if isinstance(session, Response):
        return session
    ctx = _edit_context(item, portal.version(initiative_id), _form_values(item), [])
    return page(request, "portal/edit.html", ctx)


def _text_form(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/initiatives/{initiative_id}/edit", response_class=HTMLResponse)
async def edit_submit(request: Request, initiative_id: str) -> Response:
    lang = request_lang(request)
    portal = get_portal(request)
    item = portal.get(initiative_id)
    if item is None:
        return _not_found(request)
    session = require(request, "editor")
    if isinstance(session, Response):
        return session
    form = _text_form(await request.form())
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        return error_page(
            request,
            403,
            "Form expired",
            gettext(
                lang,
                "The form was not accepted (security token missing or out of date). "
                "Go back, reload the page and try again.",
            ),
        )
    raw_version = form.get("version", "")
    if not raw_version.isdigit():
        return error_page(request, 400, "Bad request", gettext(lang, "The form has no version."))
    base_version = int(raw_version)
    note = form.get("note", "")
    changes, errors = parse_edit_form(form)
    values = {k: form.get(k, "") for k in EDITABLE_FIELDS}
    if not errors:
        try:
            edit = portal.save_edit(initiative_id, base_version, session.user, note, changes)
        except EditRejected as exc:
            errors = exc.errors
        except VersionConflict as exc:
            current = portal.get(initiative_id) or item
            newer = [e for e in portal.history(initiative_id) if e.version > base_version]
            ctx = _edit_context(current, exc.current_version, values, [], note)
            ctx.update(
                {
                    "base_version": base_version,
                    "newer": newer,
                    "current_values": _form_values(current),
                }
            )
            return page(request, "portal/conflict.html", ctx, status_code=409)
        else:
            target = localized_path(f"/initiatives/{initiative_id}", lang)
            return RedirectResponse(f"{target}?saved={edit.version}#history", status_code=303)
    ctx = _edit_context(item, base_version, values, errors, note)
    return page(request, "portal/edit.html", ctx, status_code=422)
