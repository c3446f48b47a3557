"""CKAN Action API functions (read-only): the same parameters, defaults, limits, result shapes
and errors as CKAN 2.10's ``ckan.logic.action.get``, so CKAN clients work unmodified.

Each action is ``fn(ctx, data_dict) -> result`` and raises ``errors.ActionError`` subclasses;
the web layer wraps results in CKAN's ``{"help", "success", "result"}`` envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from citypulse import __version__
from citypulse.catalogue.errors import (
    BadRequest,
    NotAuthorized,
    NotFound,
    SearchQueryError,
    ValidationError,
)
from citypulse.catalogue.model import (
    LICENCES,
    Package,
    absolutize,
    licence_title,
    localize,
    localize_package,
    pick_text,
)
from citypulse.catalogue.search import SearchParams
from citypulse.catalogue.service import Catalogue

ROWS_MAX = 1000
ROWS_DEFAULT = 10
FACET_LIMIT_DEFAULT = 50
GROUP_LIST_MAX = 1000
GROUP_LIST_ALL_FIELDS_MAX = 25
GROUP_SHOW_DATASETS = 1000
CKAN_VERSION = "2.10.4"

_SEARCH_PARAMS = {
    "q", "fq", "fq_list", "rows", "start", "sort", "facet", "facet.field", "facet.limit",
    "facet.mincount", "fl", "qf", "wt", "bf", "boost", "tie", "defType", "mm", "df", "extras",
    "include_private", "include_drafts", "include_deleted", "use_default_schema",
    "callback", "_",
}
_WRITE_WORDS = ("_create", "_update", "_patch", "_delete", "_purge", "_revise", "_reorder",
                "_follow", "_unfollow", "member_", "_member", "bulk_", "_upload")


@dataclass(frozen=True, slots=True)
class ActionContext:
    catalogue: Catalogue
    base_url: str = "http://localhost/"
    lang: str = "en"


Action = Callable[[ActionContext, dict[str, Any]], Any]


# --- validators (CKAN's navl messages) ------------------------------------------------------

def _as_int(value: Any) -> int | None:
    """CKAN's int_validator: ints, whole floats and integer strings; '' is missing."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError
    if isinstance(value, str):
        if not value.strip():
            return None
        return int(value.strip())
    raise ValueError


def _int_param(
    data: Mapping[str, Any], key: str, default: int | None, errors: dict[str, list[str]],
    *, natural: bool = True,
) -> int | None:
    if key not in data:
        return default
    try:
        value = _as_int(data[key])
    except (ValueError, TypeError):
        errors[key] = ["Invalid integer"]
        return default
    if value is None:
        return default
    if natural and value < 0:
        errors[key] = ["Must be a natural number"]
        return default
    return value


def _bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "on", "y", "t", "1")


def _string_list(value: Any, key: str, errors: dict[str, list[str]]) -> list[str]:
    """CKAN's convert_to_json_if_string + list_of_strings (a bare name is accepted too)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                errors[key] = ["Could not parse as valid JSON"]
                return []
        else:
            value = [v for v in text.replace(",", " ").split() if v]
    if not isinstance(value, list):
        errors[key] = ["Not a list"]
        return []
    if not all(isinstance(v, str) for v in value):
        errors[key] = ["Not a string"]
        return []
    return list(value)


def _required(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError({key: ["Missing value"]})
    return str(value).strip()


# --- presentation ---------------------------------------------------------------------------

def present(ctx: ActionContext, pkg: Package) -> Package:
    return absolutize(localize_package(pkg, ctx.lang), ctx.base_url)


def _group_title(ctx: ActionContext, g: Mapping[str, Any]) -> str:
    return pick_text(g.get("title_translated"), ctx.lang, str(g.get("title") or g.get("name")))


def _present_group(ctx: ActionContext, g: Mapping[str, Any], count: int | None) -> dict[str, Any]:
    out = localize(g, ctx.lang, ("title", "description"))
    out["display_name"] = out.get("title") or out["name"]
    if "is_organization" not in out:
        out["is_organization"] = False
        out["type"] = "group"
    out.setdefault("state", "active")
    out.setdefault("approval_status", "approved")
    out.setdefault("image_display_url", out.get("image_url") or "")
    out.setdefault("image_url", "")
    out.setdefault("created", None)
    if count is not None:
        out["package_count"] = count
    out.setdefault("num_followers", 0)
    return out


# --- the actions ----------------------------------------------------------------------------

def package_search(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Searches for packages satisfying a given search criteria (q, fq, facet.field, rows,
    start, sort; rows default 10, at most 1000; facet.limit default 50)."""
    errors: dict[str, list[str]] = {}
    rows = _int_param(data, "rows", ROWS_DEFAULT, errors)
    start = _int_param(data, "start", 0, errors)
    facet_limit = _int_param(data, "facet.limit", FACET_LIMIT_DEFAULT, errors, natural=False)
    mincount = _int_param(data, "facet.mincount", 1, errors)
    facet_fields = (
        _string_list(data["facet.field"], "facet.field", errors) if "facet.field" in data else []
    )
    fl: list[str] | None = None
    if data.get("fl"):
        fl_raw = data["fl"]
        fl = fl_raw.replace(",", " ").split() if isinstance(fl_raw, str) else (
            [str(x) for x in fl_raw] if isinstance(fl_raw, list) else None
        )
    for key in ("q", "fq", "sort"):
        if key in data and data[key] is not None and not isinstance(data[key], str | int | float):
            errors[key] = ["Must be a string"]  # unicode_safe refuses lists and dicts
    fq_list: list[str] = []
    if "fq_list" in data:
        fq_list = _string_list(data["fq_list"], "fq_list", errors)
    if errors:
        raise ValidationError(errors)
    unknown = sorted(
        k for k in data if k not in _SEARCH_PARAMS and not k.startswith("ext_")
    )
    if unknown:
        raise SearchQueryError(f"Invalid search parameters: {unknown}")
    params = SearchParams(
        q=str(data.get("q") or ""),
        fq=[str(data.get("fq") or ""), *fq_list],
        sort=str(data["sort"]) if data.get("sort") else None,
        rows=min(rows if rows is not None else ROWS_DEFAULT, ROWS_MAX),
        start=start or 0,
        facet=_bool(data.get("facet"), True),
        facet_fields=facet_fields,
        facet_limit=facet_limit if facet_limit is not None else FACET_LIMIT_DEFAULT,
        facet_mincount=mincount if mincount is not None else 1,
    )
    cat = ctx.catalogue
    index = cat.index()
    result = index.search(params)
    packages = [present(ctx, p) for p in cat.db.packages_by_rid(result.rids)]
    if fl:
        results: list[Any] = [{k: p.get(k) for k in fl} for p in packages]
    else:
        results = packages
    facets = {f: dict(items) for f, items in result.facets.items()}
    search_facets: dict[str, Any] = {}
    titles = _display_names(ctx, result.facets)
    for f, items in result.facets.items():
        entries = [
            {"count": c, "display_name": titles.get((f, v), v), "name": v} for v, c in items
        ]
        entries.sort(key=lambda e: str(e["display_name"]), reverse=True)  # as CKAN does
        search_facets[f] = {"title": f, "items": entries}
    return {
        "count": result.count,
        "facets": facets,
        "results": results,
        "sort": result.sort,
        "search_facets": search_facets,
    }


def _display_names(
    ctx: ActionContext, facets: Mapping[str, list[tuple[str, int]]]
) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    groups = ctx.catalogue.index().groups
    for f, items in facets.items():
        if f in ("organization", "groups"):
            for name, _ in items:
                g = groups.get((f, name))
                if g is not None:
                    out[(f, name)] = _group_title(ctx, g)
        elif f == "license_id":
            for name, _ in items:
                out[(f, name)] = licence_title(name) or name
    return out


def package_show(ctx: ActionContext, data: dict[str, Any]) -> Package:
    """Return the metadata of a dataset (package) and its resources."""
    name_or_id = _required(data, "id") if "name_or_id" not in data else _required(
        data, "name_or_id"
    )
    pkg = ctx.catalogue.db.package(name_or_id)
    if pkg is None:
        raise NotFound()
    return present(ctx, pkg)


def package_list(ctx: ActionContext, data: dict[str, Any]) -> list[str]:
    """Return a list of the names of the site's datasets (packages)."""
    errors: dict[str, list[str]] = {}
    limit = _int_param(data, "limit", None, errors)
    offset = _int_param(data, "offset", 0, errors)
    if errors:
        raise ValidationError(errors)
    return ctx.catalogue.db.package_names(limit=limit, offset=offset or 0)


def resource_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Return the metadata of a resource."""
    rid = _required(data, "id")
    found = ctx.catalogue.db.resource(rid)
    if found is None:
        raise NotFound("Resource was not found.")
    pkg, _ = found
    shown = present(ctx, pkg)
    for res in shown["resources"]:
        if res["id"] == rid:
            return dict(res)
    raise NotFound("Resource was not found.")


def _group_list(ctx: ActionContext, data: dict[str, Any], *, orgs: bool) -> list[Any]:
    errors: dict[str, list[str]] = {}
    all_fields = _bool(data.get("all_fields"))
    max_limit = GROUP_LIST_ALL_FIELDS_MAX if all_fields else GROUP_LIST_MAX
    limit = _int_param(data, "limit", max_limit, errors)
    offset = _int_param(data, "offset", 0, errors)
    if errors:
        raise ValidationError(errors)
    sort = str(data.get("sort") or "title asc").strip()
    bits = sort.split()
    field = bits[0] if bits else "title"
    desc = len(bits) > 1 and bits[1].lower() == "desc"
    if field not in ("name", "title", "package_count") or (
        len(bits) > 1 and bits[1].lower() not in ("asc", "desc")
    ):
        raise ValidationError({"sort": [f"Cannot sort by field `{field}`"]})
    db = ctx.catalogue.db
    counts = ctx.catalogue.index().counts_for("organization" if orgs else "groups")
    groups = [_present_group(ctx, g, counts.get(g["name"], 0)) for g in db.groups(
        organizations=orgs)]
    q = str(data.get("q") or "").strip().lower()
    if q:
        groups = [g for g in groups if q in g["name"].lower() or q in str(g["title"]).lower()]
    wanted_key = "organizations" if orgs else "groups"
    if data.get(wanted_key):
        wanted = set(_string_list(data[wanted_key], wanted_key, errors))
        if errors:
            raise ValidationError(errors)
        groups = [g for g in groups if g["name"] in wanted]
    if field == "package_count":
        groups.sort(key=lambda g: (g["package_count"], g["name"]), reverse=desc)
    else:
        groups.sort(key=lambda g: str(g[field]).casefold(), reverse=desc)
    page = groups[offset or 0:(offset or 0) + min(limit or max_limit, max_limit)]
    if all_fields:
        return page
    return [g["name"] for g in page]


def organization_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    """Return a list of the names of the site's organizations (all_fields for dicts)."""
    return _group_list(ctx, data, orgs=True)


def group_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    """Return a list of the names of the site's groups (all_fields for dicts)."""
    return _group_list(ctx, data, orgs=False)


def _group_show(ctx: ActionContext, data: dict[str, Any], *, orgs: bool) -> dict[str, Any]:
    name_or_id = _required(data, "id")
    cat = ctx.catalogue
    g = cat.db.group(name_or_id, organizations=orgs)
    if g is None:
        raise NotFound("Organization was not found." if orgs else "Group was not found.")
    field = "organization" if orgs else "groups"
    index = cat.index()
    out = _present_group(ctx, g, index.counts_for(field).get(g["name"], 0))
    if _bool(data.get("include_datasets"), False):
        res = index.search(SearchParams(
            fq=[f'{field}:"{g["name"]}"'], rows=GROUP_SHOW_DATASETS, facet=False,
            sort="metadata_modified desc",
        ))
        out["packages"] = [present(ctx, p) for p in cat.db.packages_by_rid(res.rids)]
    out.setdefault("users", [])
    out.setdefault("extras", [])
    out.setdefault("tags", [])
    out.setdefault("groups", [])
    return out


def organization_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Return the details of an organization (include_datasets for its datasets)."""
    return _group_show(ctx, data, orgs=True)


def group_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Return the details of a group (include_datasets for its datasets)."""
    return _group_show(ctx, data, orgs=False)


def tag_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    """Return a list of the site's tags (query: substring; all_fields for dicts)."""
    if data.get("vocabulary_id"):
        raise NotFound("Could not find vocabulary")
    counts = ctx.catalogue.index().counts_for("tags")
    names = sorted(counts)
    query = str(data.get("query") or data.get("q") or "").strip().lower()
    if query:
        names = [n for n in names if query in n.lower()]
    if _bool(data.get("all_fields")):
        from citypulse.catalogue.model import stable_id

        return [
            {"display_name": n, "id": stable_id("tag", n), "name": n, "vocabulary_id": None}
            for n in names
        ]
    return names


def license_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the list of licenses available for datasets on the site."""
    return [
        {"id": lic.id, "title": lic.title, "url": lic.url, "status": "active",
         "od_conformance": "approved" if lic.is_open else "not reviewed",
         "osd_conformance": "not reviewed", "maintainer": "", "domain_content": False,
         "domain_data": True, "domain_software": False, "family": ""}
        for lic in LICENCES.values()
    ]


def status_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Return a dictionary with information about the site's configuration."""
    return {
        "site_title": "citypulse",
        "site_description": "Smart city portal and real-time city data platform (Hong Kong)",
        "site_url": ctx.base_url.rstrip("/"),
        "ckan_version": CKAN_VERSION,
        "citypulse_version": __version__,
        "error_emails_to": None,
        "locale_default": "en",
        "extensions": ["citypulse-catalogue", "dcat"],
    }


def site_read(ctx: ActionContext, data: dict[str, Any]) -> bool:
    """Return True."""
    return True


def help_show(ctx: ActionContext, data: dict[str, Any]) -> str:
    """Return the help string for a particular API action."""
    name = _required(data, "name")
    fn = ACTIONS.get(name)
    if fn is None:
        raise NotFound(f"Action function not found: {name}")
    return (fn.__doc__ or "").strip()


ACTIONS: dict[str, Action] = {
    fn.__name__: fn
    for fn in (
        package_search, package_show, package_list, resource_show, organization_list,
        organization_show, group_list, group_show, tag_list, license_list, status_show,
        site_read, help_show,
    )
}


def call_action(name: str, ctx: ActionContext, data: dict[str, Any]) -> Any:
    """Run one action. Unknown: BadRequest; a write action: NotAuthorized (read-only)."""
    fn = ACTIONS.get(name)
    if fn is None:
        if any(w in name for w in _WRITE_WORDS):
            raise NotAuthorized(f"this catalogue is read-only ({name})")
        raise BadRequest(f"Action name not known: {name}")
    data = {k: v for k, v in data.items() if k != "callback"}
    return fn(ctx, data)
