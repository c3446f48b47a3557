"""List filters shared by the HTML list, the CSV export and the JSON API.

Filters travel as GET parameters so every view is a shareable URL. Parsing is strict: a value
that cannot mean anything (unknown area, ``page=abc``) is a :class:`FilterError` that the web
layer turns into a 400 with the message, rather than silently showing everything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from citypulse.blueprint.dates import parse_loose_date, sort_key
from citypulse.blueprint.models import EVIDENCE_LEVELS, STATUSES, Initiative
from citypulse.blueprint.registry import AREA_IDS

SORTS: tuple[str, ...] = ("relevance", "id", "title", "status", "updated", "area")
BLUEPRINTS: tuple[str, ...] = ("2017", "2020", "later")
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
MAX_QUERY_LENGTH = 200
KNOWN_PARAMS = frozenset(
    {"q", "area", "status", "owner", "year", "evidence", "blueprint", "sort", "page", "per_page"}
)


class FilterError(ValueError):
    """A GET parameter that cannot be understood; the message is shown to the user."""


@dataclass(frozen=True, slots=True)
class Filters:
    q: str = ""
    areas: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    owner: str = ""
    year: int | None = None
    evidence: tuple[str, ...] = ()
    blueprint: str = ""
    sort: str = ""  # "" = relevance with a query, else id; "-x" reverses
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @property
    def effective_sort(self) -> str:
        return self.sort or ("relevance" if self.q else "id")

    @property
    def active(self) -> bool:
        return bool(
            self.q
            or self.areas
            or self.statuses
            or self.owner
            or self.year
            or self.evidence
            or self.blueprint
        )

    def params(self, **overrides: Any) -> list[tuple[str, str]]:
        """Canonical GET parameters (defaults left out), for links that keep the filters."""
        f = replace(self, **overrides) if overrides else self
        out: list[tuple[str, str]] = []
        if f.q:
            out.append(("q", f.q))
        out += [("area", a) for a in f.areas]
        out += [("status", s) for s in f.statuses]
        if f.owner:
            out.append(("owner", f.owner))
        if f.year is not None:
            out.append(("year", str(f.year)))
        out += [("evidence", e) for e in f.evidence]
        if f.blueprint:
            out.append(("blueprint", f.blueprint))
        if f.sort:
            out.append(("sort", f.sort))
        if f.per_page != DEFAULT_PER_PAGE:
            out.append(("per_page", str(f.per_page)))
        if f.page != 1:
            out.append(("page", str(f.page)))
        return out

    def query_string(self, **overrides: Any) -> str:
        params = self.params(**overrides)
        return ("?" + urlencode(params)) if params else ""


def _multi(
    params: Mapping[str, Sequence[str]], name: str, allowed: Iterable[str]
) -> tuple[str, ...]:
    allowed = tuple(allowed)
    out: list[str] = []
    for raw in params.get(name, ()):
        for value in raw.split(","):
            value = value.strip()
            if not value:
                continue
            if value not in allowed:
                raise FilterError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
            if value not in out:
                out.append(value)
    return tuple(out)


def _single(params: Mapping[str, Sequence[str]], name: str) -> str:
    values = [v for v in params.get(name, ()) if v.strip()]
    if len(values) > 1:
        raise FilterError(f"{name} given {len(values)} times; give it once")
    return values[0].strip() if values else ""


def _int(params: Mapping[str, Sequence[str]], name: str, lo: int, hi: int) -> int | None:
    raw = _single(params, name)
    if not raw:
        return None
    if not re.fullmatch(r"\d{1,9}", raw):
        raise FilterError(f"{name} must be a whole number, got {raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise FilterError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def parse_filters(params: Mapping[str, Sequence[str]]) -> Filters:
    """Parse GET parameters given as ``{name: [values]}``; raises FilterError."""
    q = _single(params, "q")
    if len(q) > MAX_QUERY_LENGTH:
        raise FilterError(f"search text is longer than {MAX_QUERY_LENGTH} characters")
    owner = _single(params, "owner")
    if len(owner) > 100:
        raise FilterError("owner is longer than 100 characters")
    sort = _single(params, "sort")
    if sort and sort.lstrip("-") not in SORTS:
        raise FilterError(f"unknown sort {sort!r}; expected one of {', '.join(SORTS)} (- reverses)")
    blueprint = _single(params, "blueprint")
    if blueprint and blueprint not in BLUEPRINTS:
        raise FilterError(
            f"unknown blueprint {blueprint!r}; expected one of {', '.join(BLUEPRINTS)}"
        )
    return Filters(
        q=q,
        areas=_multi(params, "area", AREA_IDS),
        statuses=_multi(params, "status", STATUSES),
        owner=owner,
        year=_int(params, "year", 1990, 2100),
        evidence=_multi(params, "evidence", EVIDENCE_LEVELS),
        blueprint=blueprint,
        sort=sort,
        page=_int(params, "page", 1, 100_000) or 1,
        per_page=_int(params, "per_page", 1, MAX_PER_PAGE) or DEFAULT_PER_PAGE,
    )


def milestone_years(item: Initiative) -> set[int]:
    """Years with dated progress: milestones and the status date."""
    years: set[int] = set()
    for text in [m.date for m in item.milestones] + [item.status_as_of]:
        y = parse_loose_date(text).year
        if y is not None:
            years.add(y)
    return years


def owner_matches(owner_filter: str, owner: str) -> bool:
    """Whole-word, case-insensitive: 'TD' finds 'Transport Department (TD)' but not 'STD'."""
    pattern = r"(?<!\w)" + re.escape(owner_filter) + r"(?!\w)"
    return re.search(pattern, owner, re.IGNORECASE) is not None


_ABBREV = re.compile(r"\b([A-Z][A-Za-z&]*[A-Z])\b")


def owner_codes(items: Iterable[Initiative]) -> list[tuple[str, int]]:
    """Agency abbreviations found in owner texts (TD, OGCIO, DPO, ...), most frequent first."""
    counts: dict[str, int] = {}
    for item in items:
        for code in set(_ABBREV.findall(item.owner)):
            counts[code] = counts.get(code, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Initiative]
    total: int
    page: int
    pages: int
    per_page: int
    scores: dict[str, float] = field(default_factory=dict)


_STATUS_RANK = {s: n for n, s in enumerate(STATUSES)}
_AREA_RANK = {a: n for n, a in enumerate(AREA_IDS)}


def select(
    items: Sequence[Initiative],
    filters: Filters,
    *,
    search: Callable[[str], list[tuple[str, float]]],
    lang: str = "en",
    paginate: bool = True,
) -> Page:
    """Filter, search, sort and paginate. ``search`` returns (id, score) best first."""
    scores: dict[str, float] = {}
    if filters.q:
        scores = dict(search(filters.q))
        pool = [i for i in items if i.id in scores]
    else:
        pool = list(items)
    if filters.areas:
        pool = [i for i in pool if i.area in filters.areas]
    if filters.statuses:
        pool = [i for i in pool if i.status in filters.statuses]
    if filters.evidence:
        pool = [i for i in pool if i.evidence in filters.evidence]
    if filters.owner:
        pool = [i for i in pool if owner_matches(filters.owner, i.owner)]
    if filters.year is not None:
        year = filters.year
        pool = [i for i in pool if year in milestone_years(i)]
    if filters.blueprint:
        want = None if filters.blueprint == "later" else int(filters.blueprint)
        pool = [i for i in pool if i.first_blueprint == want]

    sort = filters.effective_sort
    reverse = sort.startswith("-")
    key = sort.lstrip("-")
    order = {i.id: n for n, i in enumerate(items)}
    if key == "relevance":
        pool.sort(key=lambda i: (-scores.get(i.id, 0.0), order[i.id]), reverse=reverse)
    elif key == "title":
        zh = lang.startswith("zh")
        pool.sort(
            key=lambda i: (i.title_zh_hant if zh and i.title_zh_hant else i.title_en).casefold(),
            reverse=reverse,
        )
    elif key == "status":
        pool.sort(key=lambda i: (_STATUS_RANK[i.status], order[i.id]), reverse=reverse)
    elif key == "updated":
        # Newest first by default: '-updated' gives oldest first. Undated always last.
        dated = [i for i in pool if sort_key(i.status_as_of)[0] == 0]
        undated = [i for i in pool if sort_key(i.status_as_of)[0] == 1]
        dated.sort(key=lambda i: (sort_key(i.status_as_of)[1], -order[i.id]), reverse=not reverse)
        pool = dated + undated
    elif key == "area":
        pool.sort(key=lambda i: (_AREA_RANK[i.area], order[i.id]), reverse=reverse)
    else:  # id: shipped order, which is area order then number
        pool.sort(key=lambda i: order[i.id], reverse=reverse)

    total = len(pool)
    if not paginate:
        return Page(pool, total, 1, 1, max(total, 1), scores)
    pages = max(1, math.ceil(total / filters.per_page))
    if filters.page > pages:
        raise FilterError(f"page {filters.page} is past the last page ({pages})")
    start = (filters.page - 1) * filters.per_page
    return Page(
        pool[start : start + filters.per_page], total, filters.page, pages, filters.per_page, scores
    )
