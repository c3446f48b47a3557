"""Catalogue entries in CKAN's package shape, and the helpers every other module shares.

A dataset travels as a plain CKAN package dict (what ``package_show`` returns), not as a class:
harvested packages carry whatever extra keys their source adds (DATA.GOV.HK adds
``update_frequency``, ``data_dictionary``, ...) and a CKAN client expects them back verbatim.
Bilingual fields follow ckanext-fluent's convention: ``title_translated`` /
``notes_translated`` = ``{"en": ..., "zh_Hant": ...}``, with ``title``/``notes`` in English.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

Package = dict[str, Any]

LANGS = ("en", "zh_Hant")
"""Translation keys, as Babel locale codes."""

_NAMESPACE = uuid.UUID("6f1d3c52-1b0e-4c55-9d59-3a4f0d6b9a10")

FACET_FIELDS = ("organization", "groups", "tags", "res_format", "license_id")
"""The fields CKAN facets on (Solr field names), in the order our UI shows them."""


@dataclass(frozen=True, slots=True)
class Licence:
    id: str
    title: str
    url: str
    is_open: bool


LICENCES: dict[str, Licence] = {
    lic.id: lic
    for lic in (
        Licence(
            "hk-datagovhk-terms",
            "DATA.GOV.HK Terms and Conditions of Use",
            "https://data.gov.hk/en/terms-and-conditions",
            True,
        ),
        Licence("cc-by", "Creative Commons Attribution",
                "http://www.opendefinition.org/licenses/cc-by", True),
        Licence("cc-by-4.0", "Creative Commons Attribution 4.0",
                "https://creativecommons.org/licenses/by/4.0/", True),
        Licence("cc-by-sa", "Creative Commons Attribution Share-Alike",
                "http://www.opendefinition.org/licenses/cc-by-sa", True),
        Licence("cc-zero", "Creative Commons CCZero",
                "http://www.opendefinition.org/licenses/cc-zero", True),
        Licence("odc-by", "Open Data Commons Attribution License",
                "http://www.opendefinition.org/licenses/odc-by", True),
        Licence("odc-odbl", "Open Data Commons Open Database License (ODbL)",
                "http://www.opendefinition.org/licenses/odc-odbl", True),
        Licence("other-open", "Other (Open)", "", True),
        Licence("notspecified", "License not specified", "", False),
    )
}

_LICENCE_BY_TEXT = {
    "data.gov.hk terms and conditions of use": "hk-datagovhk-terms",
    "data.gov.hk terms": "hk-datagovhk-terms",
    "cc by 4.0": "cc-by-4.0",
    "cc-by-4.0": "cc-by-4.0",
    "creative commons attribution 4.0": "cc-by-4.0",
    "odbl": "odc-odbl",
}


def licence_id_for(text: str | None) -> str:
    """The licence id for a free-text licence name (FeedSpec.licence)."""
    if not text:
        return "notspecified"
    key = text.strip().lower()
    if key in LICENCES:
        return key
    return _LICENCE_BY_TEXT.get(key, slug(text))


def licence_title(licence_id: str | None) -> str | None:
    if not licence_id:
        return None
    lic = LICENCES.get(licence_id)
    return lic.title if lic else licence_id


_SLUG_BAD = re.compile(r"[^a-z0-9_-]+")


def slug(text: str) -> str:
    """A CKAN-legal name (lowercase alphanumerics, ``-`` and ``_``, 2-100 characters)."""
    out = _SLUG_BAD.sub("-", text.strip().lower()).strip("-")
    return (out or "x")[:100]


@lru_cache(maxsize=65_536)
def stable_id(kind: str, name: str) -> str:
    """A UUID that stays the same for the same name, so re-syncing keeps CKAN ids stable."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def ckan_time(dt: datetime) -> str:
    """CKAN's timestamp format: naive ISO 8601 in UTC with microseconds."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds")


def now_ckan() -> str:
    return ckan_time(datetime.now(UTC))


def lang_key(lang: str) -> str:
    """Request language tag (``en``/``zh-Hant``) -> translation key (``en``/``zh_Hant``)."""
    return "zh_Hant" if lang.lower().startswith("zh") else "en"


def pick_text(translated: Any, lang: str, fallback: str | None = None) -> str:
    """The text in ``lang`` from a ``*_translated`` dict, falling back to the other language."""
    key = lang_key(lang)
    if isinstance(translated, Mapping):
        for k in (key, *[k for k in LANGS if k != key]):
            value = translated.get(k)
            if isinstance(value, str) and value:
                return value
    return fallback or ""


def translations(obj: Mapping[str, Any], field: str) -> list[str]:
    """Every distinct non-empty language version of ``field`` (for indexing)."""
    out: list[str] = []
    tr = obj.get(f"{field}_translated")
    if isinstance(tr, Mapping):
        out.extend(v for v in tr.values() if isinstance(v, str) and v)
    base = obj.get(field)
    if isinstance(base, str) and base:
        out.append(base)
    return list(dict.fromkeys(out))


# --- normalisation -----------------------------------------------------------------------------

def _tag(name: str) -> dict[str, Any]:
    return {
        "display_name": name,
        "id": stable_id("tag", name),
        "name": name,
        "state": "active",
        "vocabulary_id": None,
    }


def normalize_organization(org: Mapping[str, Any]) -> dict[str, Any]:
    name = str(org.get("name") or slug(str(org.get("title") or "organization")))
    out: dict[str, Any] = {
        "id": org.get("id") or stable_id("organization", name),
        "name": name,
        "title": org.get("title") or name,
        "type": "organization",
        "description": org.get("description") or "",
        "image_url": org.get("image_url") or "",
        "created": org.get("created") or now_ckan(),
        "is_organization": True,
        "approval_status": org.get("approval_status") or "approved",
        "state": org.get("state") or "active",
    }
    for key in ("title_translated", "description_translated"):
        if isinstance(org.get(key), Mapping):
            out[key] = dict(org[key])
    return out


def normalize_group(group: Mapping[str, Any]) -> dict[str, Any]:
    name = str(group.get("name") or slug(str(group.get("title") or "group")))
    title = group.get("title") or group.get("display_name") or name
    out: dict[str, Any] = {
        "description": group.get("description") or "",
        "display_name": group.get("display_name") or title,
        "id": group.get("id") or stable_id("group", name),
        "image_display_url": group.get("image_display_url") or "",
        "name": name,
        "title": title,
    }
    for key in ("title_translated", "description_translated"):
        if isinstance(group.get(key), Mapping):
            out[key] = dict(group[key])
    return out


_RESOURCE_DEFAULTS: dict[str, Any] = {
    "cache_last_updated": None,
    "cache_url": None,
    "created": None,
    "description": "",
    "format": "",
    "hash": "",
    "last_modified": None,
    "metadata_modified": None,
    "mimetype": None,
    "mimetype_inner": None,
    "name": "",
    "resource_type": None,
    "size": None,
    "state": "active",
    "url": "",
    "url_type": None,
}


def normalize_package(pkg: Mapping[str, Any]) -> Package:
    """Fill in what CKAN's ``package_show`` always returns, derive counts and ids, and keep
    every extra key the source gave. Raises ValueError when there is no usable name."""
    out: Package = orjson.loads(orjson.dumps(pkg))  # deep copy, 5x faster for JSON data
    name = out.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("package without a name")
    name = name.strip()
    out["name"] = name
    out["id"] = str(out.get("id") or stable_id("package", name))
    now = now_ckan()
    out["metadata_created"] = str(out.get("metadata_created") or now)
    out["metadata_modified"] = str(out.get("metadata_modified") or out["metadata_created"])
    out["title"] = out.get("title") or pick_text(out.get("title_translated"), "en", name)
    out.setdefault("notes", "")
    if out["notes"] is None:
        out["notes"] = ""
    for key, default in (
        ("author", None), ("author_email", None), ("creator_user_id", None),
        ("maintainer", None), ("maintainer_email", None), ("url", None), ("version", None),
        ("private", False), ("state", "active"), ("type", "dataset"),
    ):
        out.setdefault(key, default)
    lic = out.get("license_id") or None
    out["license_id"] = lic
    known = LICENCES.get(lic) if lic else None
    out.setdefault("license_title", known.title if known else lic)
    if known and known.url:
        out.setdefault("license_url", known.url)
    out["isopen"] = bool(known.is_open) if known else bool(out.get("isopen", False))
    org = out.get("organization")
    if isinstance(org, Mapping) and org.get("name"):
        out["organization"] = normalize_organization(org)
        out["owner_org"] = out["organization"]["id"]
    else:
        out["organization"] = None
        out.setdefault("owner_org", None)
    out["groups"] = [normalize_group(g) for g in out.get("groups") or [] if isinstance(g, Mapping)]
    tags: list[dict[str, Any]] = []
    for t in out.get("tags") or []:
        tag_name = t.get("name") if isinstance(t, Mapping) else t
        if isinstance(tag_name, str) and tag_name.strip():
            tag = _tag(tag_name.strip())
            if isinstance(t, Mapping):
                tag.update({k: v for k, v in t.items() if v is not None})
            tags.append(tag)
    out["tags"] = tags
    resources: list[dict[str, Any]] = []
    for pos, r in enumerate(x for x in out.get("resources") or [] if isinstance(x, Mapping)):
        res = {**_RESOURCE_DEFAULTS, **dict(r)}
        res["id"] = str(res.get("id") or stable_id("resource", f"{name}/{pos}"))
        res["package_id"] = out["id"]
        res["position"] = pos
        res["created"] = res.get("created") or out["metadata_created"]
        res["format"] = str(res.get("format") or "").strip()
        resources.append(res)
    out["resources"] = resources
    extras = []
    for e in out.get("extras") or []:
        if isinstance(e, Mapping) and "key" in e:
            extras.append({"key": str(e["key"]), "value": e.get("value")})
    out["extras"] = extras
    out["num_resources"] = len(resources)
    out["num_tags"] = len(tags)
    out.setdefault("relationships_as_object", [])
    out.setdefault("relationships_as_subject", [])
    return out


def extras_dict(pkg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(e["key"]): e.get("value")
        for e in pkg.get("extras") or []
        if isinstance(e, Mapping) and "key" in e
    }


def facet_values(pkg: Mapping[str, Any]) -> dict[str, list[str]]:
    """The values of each facet field for one package (Solr's multi-valued fields)."""
    org = pkg.get("organization")
    return {
        "organization": [org["name"]] if isinstance(org, Mapping) and org.get("name") else [],
        "groups": _uniq(g.get("name") for g in pkg.get("groups") or []),
        "tags": _uniq(t.get("name") for t in pkg.get("tags") or []),
        "res_format": _uniq(r.get("format") for r in pkg.get("resources") or []),
        "license_id": [pkg["license_id"]] if pkg.get("license_id") else [],
    }


def _uniq(values: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(v for v in values if isinstance(v, str) and v))


# --- language ------------------------------------------------------------------------------

def localize(obj: Mapping[str, Any], lang: str, fields: Iterable[str]) -> dict[str, Any]:
    out = dict(obj)
    for field in fields:
        tr = obj.get(f"{field}_translated")
        if isinstance(tr, Mapping):
            out[field] = pick_text(tr, lang, obj.get(field) or "")
    return out


def localize_package(pkg: Mapping[str, Any], lang: str) -> Package:
    """The package as a CKAN site in ``lang`` would show it (DATA.GOV.HK serves Chinese
    titles under /tc-data/): ``title``/``notes`` and names of resources, organization and
    groups in that language; the ``*_translated`` dicts stay for clients that want both."""
    if lang_key(lang) == "en":
        return dict(pkg)
    out = localize(pkg, lang, ("title", "notes"))
    out["resources"] = [localize(r, lang, ("name", "description")) for r in pkg["resources"]]
    if isinstance(pkg.get("organization"), Mapping):
        out["organization"] = localize(pkg["organization"], lang, ("title", "description"))
    groups = []
    for g in pkg.get("groups") or []:
        lg = localize(g, lang, ("title", "description"))
        lg["display_name"] = lg["title"]
        groups.append(lg)
    out["groups"] = groups
    return out


def absolutize(pkg: Package, base_url: str) -> Package:
    """Local resource URLs are stored as paths; clients get absolute URLs as from CKAN."""
    base = base_url.rstrip("/")
    if not any(str(r.get("url") or "").startswith("/") for r in pkg.get("resources") or []):
        return pkg
    out = dict(pkg)
    out["resources"] = [
        {**r, "url": base + r["url"]} if str(r.get("url") or "").startswith("/") else r
        for r in pkg["resources"]
    ]
    return out


# --- text for the full-text index ----------------------------------------------------------

_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
               (0xAC00, 0xD7AF))
_CJK = re.compile(
    "([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
    "\U00020000-\U0002fa1f])"
)
_CJK_ASTRAL = re.compile("([\U00020000-\U0002fa1f])")
_CJK_TABLE: dict[int, str] = {
    cp: f" {chr(cp)} " for lo, hi in _CJK_RANGES for cp in range(lo, hi + 1)
}


def segment_cjk(text: str) -> str:
    """Put spaces around CJK characters so the tokenizer indexes one character per token;
    a Chinese query then runs as a phrase of adjacent characters (an exact substring match),
    which needs no dictionary and finds 交通 inside 交通速度圖."""
    if text.isascii():
        return text
    out = text.translate(_CJK_TABLE)
    if not out.isascii() and _CJK_ASTRAL.search(out):
        out = _CJK_ASTRAL.sub(r" \1 ", out)
    return out


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def search_text(pkg: Mapping[str, Any]) -> dict[str, str]:
    """The text of each full-text column for one package (every language)."""
    org = pkg.get("organization") if isinstance(pkg.get("organization"), Mapping) else {}
    res_bits: list[str] = []
    for r in pkg.get("resources") or []:
        res_bits.extend(translations(r, "name"))
        res_bits.extend(translations(r, "description"))
        if r.get("format"):
            res_bits.append(str(r["format"]))
    group_bits: list[str] = []
    for g in pkg.get("groups") or []:
        group_bits.extend(translations(g, "title"))
        group_bits.append(str(g.get("name") or ""))
    cols = {
        "name": str(pkg.get("name") or "").replace("-", " ").replace("_", " "),
        "title": " \n".join(translations(pkg, "title")),
        "tags": " \n".join(t.get("name", "") for t in pkg.get("tags") or []),
        "notes": " \n".join(translations(pkg, "notes")),
        "org": " \n".join([*translations(org or {}, "title"), str((org or {}).get("name") or "")]),
        "res": " \n".join([*res_bits, *group_bits]),
    }
    return {k: segment_cjk(v) for k, v in cols.items()}
