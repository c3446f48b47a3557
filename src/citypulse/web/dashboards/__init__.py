"""Declarative dashboards: each ``*.yaml`` file in this folder describes one dashboard as a list
of tiles, and each tile as a query (what to read from the store) plus a view (how to show it).

One generic route, template and script render every dashboard, so a city adds a tile by adding a
few lines of YAML, not a page. The definitions are validated with pydantic when the app starts
(unknown keys, unknown view types or a duration like ``3 hours`` stop start-up with a message
naming the file), so a typo never becomes a broken page.

    id: environment
    title: {en: Environment, zh: 環境}
    tiles:
      - id: aqhi
        title: {en: Air Quality Health Index, zh: 空氣質素健康指數}
        feeds: [epd-aqhi]
        stale_after: 2h
        query: {type: latest, kind: aqhi-station, metrics: [aqhi]}
        view: {type: map, colour: aqhi, bands: aqhi, columns: [{metric: aqhi, title: ...}]}

Query types: ``latest`` (latest value of one or more metrics per entity of a kind), ``series``
(one entity over a window), ``aggregate`` (all entities of a kind over a window), ``events``,
``entities`` (counted by district or a property) and ``custom`` (a named function in
:mod:`citypulse.web.dashboards.custom` for what does not fit the others). View types: ``figures``,
``table``, ``map``, ``chart``, ``list``, ``choropleth``, ``clusters``, ``slot`` and ``custom``
(a template of its own).
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

DEFINITIONS_DIR = Path(__file__).parent

_DURATION = re.compile(r"^(\d{1,5})(m|h|d)$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """``90m``, ``2h``, ``30d`` (or a timedelta) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    m = _DURATION.match(str(value).strip())
    if m is None:
        raise ValueError(f"{value!r} is not a duration like 30m, 2h or 7d")
    return timedelta(seconds=int(m[1]) * _UNITS[m[2]])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A bilingual string (English, Traditional Chinese)."""

    en: str
    zh: str

    def pick(self, lang: str) -> str:
        return self.zh if lang.startswith("zh") and self.zh else self.en


class Query(_Strict):
    type: Literal["latest", "series", "aggregate", "events", "entities", "custom"]
    kind: str | None = None
    metrics: tuple[str, ...] = ()
    metric: str | None = None
    entity: str | None = None
    window: Duration = timedelta(hours=24)
    bucket: Duration | None = None
    active: bool = False
    event_kind: str | None = None
    group_by: Literal["district", "property"] | None = None
    property: str | None = None
    name: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    limit: Annotated[int, Field(ge=1, le=100_000)] = 500
    district_filter: bool = True
    """Apply the page's district (district pages, ``?district=``) to this query."""


class Column(_Strict):
    """One value column of a table (and what a map marker or a chart line shows)."""

    metric: str
    title: Text
    unit: str = ""
    decimals: Annotated[int, Field(ge=0, le=4)] = 0
    bands: str | None = None
    """Colour scheme name (``aqhi``, ``vacancy``, ``saturation``...): the value is shown as a
    coloured chip that always carries text too."""


class Series(_Strict):
    key: str
    title: Text
    colour: str = "#0b5394"
    dash: bool = False


class View(_Strict):
    type: Literal[
        "figures", "table", "map", "chart", "list", "choropleth", "clusters", "slot", "custom"
    ]
    columns: tuple[Column, ...] = ()
    colour: str | None = None
    """Map/choropleth: which metric (or key) colours the markers or areas."""
    bands: str | None = None
    series: tuple[Series, ...] = ()
    y_title: Text | None = None
    template: str | None = None
    script: str | None = None
    data_url: str | None = None
    note: Text | None = None
    self_updating: bool = False
    """The tile's own script keeps it live (the generic script leaves it alone)."""
    table: bool = True
    """Maps and charts: render the accessible table of the same data."""
    marker: Literal["label", "dot"] = "label"
    """Maps: markers show their value (few points) or are plain dots (hundreds)."""
    empty_note: Text | None = None
    """What to say when the query returns nothing (default: no data in the store yet)."""
    click_target: str | None = None
    """Maps: a click sets ``lat``/``lon`` and refreshes this tile (nearest car parks)."""


class Tile(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")]
    title: Text
    description: Text | None = None
    feeds: tuple[str, ...] = ()
    stale_after: Duration = timedelta(hours=1)
    query: Query
    view: View
    width: Literal["third", "half", "two-thirds", "full"] = "half"
    topics: tuple[str, ...] = ()
    """Bus topics that refresh this tile besides its feeds' (feeds not in the registry, such as
    pushed sensor data)."""
    source: Text | None = None
    optional: bool = False
    """Hide the tile entirely when its query returns nothing (e.g. vaccinations)."""


class Dashboard(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")]
    title: Text
    heading: Text | None = None
    """The page's h1 when it differs from the menu title."""
    lede: Text
    nav: bool = True
    params: tuple[Literal["district", "vehicle", "start", "end", "lat", "lon"], ...] = ()
    tiles: tuple[Tile, ...]
    scripts: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    note: Text | None = None
    demo_note: Text | None = None
    """Shown in demo mode (e.g. that a historical series is simulated)."""

    def tile(self, tile_id: str) -> Tile | None:
        for t in self.tiles:
            if t.id == tile_id:
                return t
        return None

    @property
    def feeds(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.tiles:
            seen.update(dict.fromkeys(t.feeds))
        return tuple(seen)

    def topics(self) -> tuple[str, ...]:
        """SSE topics that carry this dashboard's updates: each registered feed's first topic
        (the pipeline publishes every message on all of a feed's topics) plus declared ones."""
        from citypulse.feeds.registry import all_feeds

        specs = all_feeds()
        seen: dict[str, None] = {}
        for t in self.tiles:
            for f in t.feeds:
                spec = specs.get(f)
                if spec is not None:
                    seen[spec.topics[0] if spec.topics else f"feed.{f}"] = None
            seen.update(dict.fromkeys(t.topics))
        return tuple(seen)


class DefinitionError(RuntimeError):
    """A dashboard file is invalid; the message names the file and the problem."""


def load_file(path: Path) -> Dashboard:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        dash = Dashboard.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise DefinitionError(f"{path.name}: {exc}") from exc
    if dash.id != path.stem:
        raise DefinitionError(f"{path.name}: id {dash.id!r} must match the file name")
    ids = [t.id for t in dash.tiles]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DefinitionError(f"{path.name}: duplicate tile ids {dupes}")
    for t in dash.tiles:
        if t.query.type == "custom" and not t.query.name:
            raise DefinitionError(f"{path.name}: tile {t.id}: a custom query needs a name")
        if t.view.type == "custom" and not t.view.template:
            raise DefinitionError(f"{path.name}: tile {t.id}: a custom view needs a template")
    return dash


@cache
def dashboards(folder: Path = DEFINITIONS_DIR) -> dict[str, Dashboard]:
    """Every dashboard definition in ``folder``, by id, in file-name order."""
    out: dict[str, Dashboard] = {}
    for path in sorted(folder.glob("*.yaml")):
        dash = load_file(path)
        out[dash.id] = dash
    return out


def get_dashboard(dashboard_id: str) -> Dashboard | None:
    return dashboards().get(dashboard_id)


DASHBOARD_ORDER = ("traffic", "environment", "mobility", "connectivity", "covid-19",
                   "smart-village")
"""The public dashboards, in menu order (``district`` is the per-district page)."""


def public_dashboards() -> list[Dashboard]:
    found = dashboards()
    ordered = [found[i] for i in DASHBOARD_ORDER if i in found and found[i].nav]
    ordered += [d for i, d in found.items() if i not in DASHBOARD_ORDER and d.nav]
    return ordered
