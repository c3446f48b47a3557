"""Catalogue pages (``/datasets``, ``/datasets/{name}``), DCAT-AP documents of the catalogue
and each dataset (Turtle, JSON-LD), and bulk downloads of a feed's observations
(``/api/v1/feeds/{feed_id}/observations.csv|.parquet``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from citypulse.catalogue.actions import ActionContext, present
from citypulse.catalogue.dcat import catalogue_graph, dataset_graph, serialize
from citypulse.catalogue.model import FACET_FIELDS, licence_title, pick_text
from citypulse.catalogue.observations import (
    ExportError,
    csv_chunks,
    parquet_bytes,
    read_feed_observations,
    window,
)
from citypulse.catalogue.search import SearchParams
from citypulse.catalogue.service import Catalogue, catalogue_for
from citypulse.web.templating import render

router = APIRouter()

PAGE_SIZE = 20
FACET_SHOWN = 10
FACET_LIMIT = 50
PREVIEW_ROWS = 20
DCAT_PAGE = 1000
SORTS = {
    "relevance": "score desc, metadata_modified desc",
    "modified": "metadata_modified desc",
    "name": "name asc",
    "title": "title_string asc",
}
SORT_LABELS = {"relevance": "Relevance", "modified": "Last modified", "name": "Name",
               "title": "Title"}
FACET_LABELS = {
    "organization": "Organizations",
    "groups": "Categories",
    "res_format": "Formats",
    "tags": "Tags",
    "license_id": "Licences",
}
RDF_TYPES = {"ttl": ("turtle", "text/turtle; charset=utf-8"),
             "jsonld": ("json-ld", "application/ld+json")}


def _catalogue(request: Request) -> Catalogue:
    return catalogue_for(request.app.state)


def _lang(request: Request) -> str:
    return str(getattr(request.state, "lang", "en"))


def _base(request: Request) -> str:
    return str(request.base_url)


# --- DCAT ------------------------------------------------------------------------------------

@router.get("/datasets.{ext}", include_in_schema=False)
def catalogue_rdf(request: Request, ext: str,
                  page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    """The catalogue as DCAT-AP, ``DCAT_PAGE`` datasets per page (``?page=``)."""
    if ext not in RDF_TYPES:
        raise HTTPException(404, "use .ttl or .jsonld")
    fmt, media = RDF_TYPES[ext]
    g = catalogue_graph(_catalogue(request), _base(request), start=(page - 1) * DCAT_PAGE,
                        rows=DCAT_PAGE)
    return Response(serialize(g, fmt), media_type=media)


@router.get("/datasets/{name}.{ext}", include_in_schema=False)
def dataset_rdf(request: Request, name: str, ext: str) -> Response:
    if ext not in RDF_TYPES:
        raise HTTPException(404, "use .ttl or .jsonld")
    pkg = _catalogue(request).db.package(name)
    if pkg is None:
        raise HTTPException(404, f"unknown dataset {name!r}")
    fmt, media = RDF_TYPES[ext]
    return Response(serialize(dataset_graph(pkg, _base(request)), fmt), media_type=media)


# --- pages -----------------------------------------------------------------------------------

def _query_url(request: Request, params: list[tuple[str, str]]) -> str:
    path = str(getattr(request.state, "unprefixed_path", request.url.path))
    from citypulse.web.i18n import localized_path

    base = localized_path(path, _lang(request))
    return base + ("?" + urlencode(params) if params else "")


def _facet_title(cat: Catalogue, fname: str, value: str, lang: str) -> str:
    if fname in ("organization", "groups"):
        g = cat.index().groups.get((fname, value))
        if g is not None:
            return pick_text(g.get("title_translated"), lang, str(g.get("title") or value))
    if fname == "license_id":
        return licence_title(value) or value
    return value


@router.get("/datasets", response_class=HTMLResponse, include_in_schema=False)
def dataset_search_page(
    request: Request,
    q: Annotated[str, Query(max_length=500)] = "",
    sort: str = "relevance",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    organization: Annotated[list[str] | None, Query()] = None,
    groups: Annotated[list[str] | None, Query()] = None,
    res_format: Annotated[list[str] | None, Query()] = None,
    tags: Annotated[list[str] | None, Query()] = None,
    license_id: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    cat = _catalogue(request)
    lang = _lang(request)
    selected: dict[str, list[str]] = {
        "organization": organization or [], "groups": groups or [],
        "res_format": res_format or [], "tags": tags or [], "license_id": license_id or [],
    }
    fq = " ".join(
        f'{f}:"{v.replace(chr(34), "")}"' for f, values in selected.items() for v in values
    )
    sort_key = sort if sort in SORTS else "relevance"
    error = None
    try:
        result = cat.search(SearchParams(
            q=q, fq=[fq], sort=SORTS[sort_key], rows=PAGE_SIZE, start=(page - 1) * PAGE_SIZE,
            facet_fields=list(FACET_FIELDS), facet_limit=FACET_LIMIT,
        ))
    except Exception as exc:  # a query the search cannot run: show it, with no results
        from citypulse.catalogue.errors import SearchQueryError

        if not isinstance(exc, SearchQueryError):
            raise
        error = exc.detail
        result = cat.search(SearchParams(rows=0, facet=False))
        result.count = 0
    ctx = ActionContext(cat, base_url=_base(request), lang=lang)
    datasets = [present(ctx, p) for p in cat.db.packages_by_rid(result.rids)] if not error else []
    current: list[tuple[str, str]] = [("q", q)] if q else []
    if sort_key != "relevance":
        current.append(("sort", sort_key))
    for f, values in selected.items():
        current.extend((f, v) for v in values)
    facets = []
    for fname in FACET_FIELDS:
        items: list[dict[str, Any]] = []
        for value, count in result.facets.get(fname, []):
            active = value in selected[fname]
            toggled = [p for p in current if p != (fname, value)] if active else [
                *current, (fname, value)]
            items.append({
                "value": value, "count": count, "active": active,
                "title": _facet_title(cat, fname, value, lang),
                "url": _query_url(request, toggled),
            })
        items.sort(key=lambda i: (not i["active"], -i["count"], str(i["title"])))
        facets.append({"field": fname, "label": FACET_LABELS[fname], "items": items,
                       "shown": FACET_SHOWN})
    pages = max(1, math.ceil(result.count / PAGE_SIZE))
    pager = {
        "page": page, "pages": pages,
        "prev": _query_url(request, [*current, ("page", str(page - 1))]) if page > 1 else None,
        "next": _query_url(request, [*current, ("page", str(page + 1))])
        if page < pages else None,
    }
    sort_links = [
        {"key": k, "label": SORT_LABELS[k], "active": k == sort_key,
         "url": _query_url(request, [p for p in current if p[0] != "sort"]
                           + ([("sort", k)] if k != "relevance" else []))}
        for k in SORTS
    ]
    active_filters = [
        {"field": f, "value": v, "title": _facet_title(cat, f, v, lang),
         "url": _query_url(request, [p for p in current if p != (f, v)])}
        for f, values in selected.items() for v in values
    ]
    return render(request, "datasets/search.html", {
        "q": q, "count": result.count, "datasets": datasets, "facets": facets,
        "pager": pager, "sort_links": sort_links, "active_filters": active_filters,
        "selected": selected, "error": error, "sort": sort_key,
    })


def _preview(request: Request, pkg: dict[str, Any]) -> dict[str, Any] | None:
    """First rows of the feed's observations of the last hour, for the dataset page."""
    feed_id = next((e.get("value") for e in pkg.get("extras") or []
                    if e.get("key") == "feed_id"), None)
    if not feed_id:
        return None
    end = datetime.now(UTC)
    try:
        table = read_feed_observations(request.app.state.store, str(feed_id),
                                       end - timedelta(hours=1), end, limit=PREVIEW_ROWS)
    except ExportError as exc:
        return {"columns": [], "rows": [], "message": exc.message}
    except Exception as exc:  # the store is down or busy: the page still renders
        return {"columns": [], "rows": [], "message": f"{exc.__class__.__name__}"}
    cols = table.column_names
    rows = [[("" if v is None else str(v)) for v in row.values()] for row in table.to_pylist()]
    return {"columns": cols, "rows": rows, "message": None}


@router.get("/datasets/{name}", response_class=HTMLResponse, include_in_schema=False)
def dataset_page(request: Request, name: str) -> HTMLResponse:
    cat = _catalogue(request)
    raw = cat.db.package(name)
    if raw is None:
        return render(request, "datasets/not_found.html", {"name": name}, status_code=404)
    lang = _lang(request)
    pkg = present(ActionContext(cat, base_url=_base(request), lang=lang), raw)
    tabular = [r for r in pkg["resources"]
               if str(r.get("format", "")).upper() in ("CSV", "PARQUET", "XLSX", "XLS")]
    preview = _preview(request, raw) if tabular else None
    extras = [e for e in pkg.get("extras") or [] if e.get("key") and e.get("value") not in (
        None, "")]
    return render(request, "datasets/show.html", {
        "pkg": pkg, "preview": preview, "extras": extras,
        "licence": licence_title(pkg.get("license_id")),
        "licence_url": pkg.get("license_url"),
    })


# --- bulk downloads ------------------------------------------------------------------------

def _export(request: Request, feed_id: str, start: str | None, end: str | None) -> Any:
    from citypulse.feeds.registry import all_feeds

    if feed_id not in all_feeds():
        raise HTTPException(404, f"unknown feed {feed_id!r}")
    try:
        lo, hi = window(start, end)
        return read_feed_observations(request.app.state.store, feed_id, lo, hi), lo, hi
    except ExportError as exc:
        raise HTTPException(exc.status, exc.message) from exc


def _filename(feed_id: str, lo: datetime, hi: datetime, ext: str) -> str:
    return f"{feed_id}_{lo:%Y%m%dT%H%MZ}_{hi:%Y%m%dT%H%MZ}.{ext}"


StartQ = Annotated[str | None, Query(description="YYYY-MM-DD (a Hong Kong day) or ISO "
                                     "datetime with offset; default: end - 24 h")]
EndQ = Annotated[str | None, Query(description="YYYY-MM-DD (inclusive day) or ISO datetime; "
                                   "default: now")]


@router.get("/api/v1/feeds/{feed_id}/observations.csv", tags=["bulk downloads"],
            summary="A feed's stored observations as CSV (any date range up to 400 days)")
async def observations_csv(request: Request, feed_id: str, start: StartQ = None,
                           end: EndQ = None) -> Response:
    table, lo, hi = await run_in_threadpool(_export, request, feed_id, start, end)
    return StreamingResponse(
        csv_chunks(table), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition":
                 f'attachment; filename="{_filename(feed_id, lo, hi, "csv")}"'},
    )


@router.get("/api/v1/feeds/{feed_id}/observations.parquet", tags=["bulk downloads"],
            summary="A feed's stored observations as Parquet (zstd)")
async def observations_parquet(request: Request, feed_id: str, start: StartQ = None,
                               end: EndQ = None) -> Response:
    table, lo, hi = await run_in_threadpool(_export, request, feed_id, start, end)
    body = await run_in_threadpool(parquet_bytes, table)
    return Response(
        body, media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition":
                 f'attachment; filename="{_filename(feed_id, lo, hi, "parquet")}"'},
    )
