"""Tile HTML: one Jinja template per view type, rendered in each language when a tile is
computed (in the worker thread, off the event loop) and cached with the result.

The HTML is the tile's complete state without JavaScript: tables behind every map and chart,
times in Hong Kong time, freshness and feed-down notices. Maps and charts also carry their data
as JSON (``<script type="application/json">``) for ``static/js/dashboard.js``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson
from markupsafe import Markup

from citypulse.feeds.base import HKT
from citypulse.web.dashboards import Column, Tile
from citypulse.web.dashboards.bands import NO_DATA, SCHEMES, Band, band_for, quantile_bands
from citypulse.web.dashboards.districts import BY_ID, district_name, region_name
from citypulse.web.dashboards.results import Area, Row, TileData, Value
from citypulse.web.dashboards.state import TileResult
from citypulse.web.i18n import LANGUAGES, gettext, localized_path, pick


def hkt(ts: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return ts.astimezone(HKT).strftime(fmt) if ts is not None else ""


def iso(ts: datetime | None) -> str:
    return ts.isoformat() if ts is not None else ""


def fmt(value: float | None, decimals: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{decimals}f}"


def json_script(data: Any) -> Markup:
    """JSON safe inside <script type="application/json">: '<' escaped so '</script>' in a
    name cannot end the element."""
    text = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _band(column: Column | None, scheme: str | None, v: Value | None) -> Band | None:
    name = (column.bands if column else None) or scheme
    if name is None or v is None:
        return None
    if name == "vacancy" and v.label == "flag":
        name = "vacancy_flag"
    return band_for(name, v.value, v.label)


class TileView:
    """Helpers a tile template calls, bound to one result and language."""

    def __init__(self, result: TileResult, lang: str) -> None:
        self.result = result
        self.tile: Tile = result.tile
        self.data: TileData = result.data
        self.lang = lang

    # -- text ------------------------------------------------------------------------------------

    def _(self, text: str) -> str:
        return gettext(self.lang, text)

    def pick(self, en: str | None, zh: str | None) -> str:
        return pick(self.lang, en, zh)

    def picked(self, names: dict[str, dict[str, str]]) -> dict[str, str]:
        """{code: {en, zh}} -> {code: name in this language}."""
        return {k: pick(self.lang, n.get("en"), n.get("zh")) for k, n in names.items()}

    def name(self, row: Row) -> str:
        return pick(self.lang, row.name_en, row.name_zh) or row.id

    def district(self, did: str | None) -> str:
        return district_name(did, self.lang) if did else ""

    def region(self, rid: str) -> str:
        return region_name(rid, self.lang)

    def url(self, path: str) -> str:
        return localized_path(path, self.lang)

    def short_time(self, ts: datetime | None) -> str:
        """The time alone when it is on the day of the tile's newest data, else date and time."""
        text = hkt(ts)
        day = hkt(self.data.updated)[:10]
        return text[11:] if day and text.startswith(day) else text

    # -- values ----------------------------------------------------------------------------------

    def cell(self, column: Column, v: Value | None) -> dict[str, Any]:
        if v is None:
            return {"text": "–", "band": None, "label": None}
        band = _band(column, None, v)
        text = fmt(v.value, column.decimals)
        if column.bands == "aqhi" and v.value is not None and v.value > 10:
            text = "10+"  # stored as 11 by convention (EPD publishes "10+")
        if v.value is None and band is not None and band is not NO_DATA:
            text = band.title(self.lang)  # a state without a number (alert state, layer)
        elif v.label == "closed":
            text = self._("closed")
        elif v.label == "flag" and v.value is not None:
            text = self._("full") if v.value == 0 else self._("available")
        if column.unit and v.value is not None and v.label not in ("closed", "flag"):
            text = f"{text} {column.unit}" if column.unit not in ("%",) else f"{text}{column.unit}"
        return {"text": text, "band": band if band is not NO_DATA else None,
                "band_title": band.title(self.lang) if band else "", "label": v.label}

    def figure_text(self, f: Any) -> str:
        if f.text:
            parts = f.text.split("|", 1)
            return str(parts[1] if self.lang.startswith("zh") and len(parts) == 2 else parts[0])
        if f.value is None:
            return "–"
        return fmt(f.value, f.decimals) + (f" {f.unit}" if f.unit and f.unit != "%" else f.unit)

    def figure_band(self, f: Any) -> Band | None:
        if not f.band or f.value is None:
            return None
        return band_for(f.band, f.value)

    # -- maps ------------------------------------------------------------------------------------

    def map_payload(self) -> dict[str, Any]:
        view = self.tile.view
        colour_metric = view.colour
        column = next((c for c in view.columns if c.metric == colour_metric), None)
        scheme = view.bands or (column.bands if column else None)
        points = []
        for r in self.data.rows:
            if r.lat is None or r.lon is None:
                continue
            v = r.values.get(colour_metric or "") if colour_metric else None
            band = _band(column, scheme, v) or NO_DATA
            details = [self.name(r)]
            for c in view.columns:
                cell = self.cell(c, r.values.get(c.metric))
                details.append(f"{c.title.pick(self.lang)}: {cell['text']}")
            text = ""
            if (view.marker == "label" and view.colour and v is not None and v.value is not None
                    and column is not None):
                text = fmt(v.value, column.decimals)
                if scheme == "aqhi" and v.value > 10:
                    text = "10+"
            points.append({
                "id": r.id, "lat": r.lat, "lon": r.lon, "colour": band.colour, "ink": band.ink,
                "band": band.key, "text": text, "title": " · ".join(details),
                "layer": r.props.get("layer"),
            })
        legend = self.legend(scheme) if scheme else []
        return {"points": points, "legend": legend, "focus": self.result.params.district,
                "legend_title": column.title.pick(self.lang) if column else ""}

    def legend(self, scheme: str | None) -> list[dict[str, str]]:
        if not scheme:
            return []
        bands = list(SCHEMES.get(scheme, ()))
        if scheme == "vacancy":
            bands = [b for b in bands if b.key != "closed"] + [SCHEMES["vacancy"][0]]
        return [{"key": b.key, "title": b.title(self.lang), "colour": b.colour, "ink": b.ink,
                 "cls": b.cls} for b in bands]

    def area_bands(self) -> tuple[str | None, list[Band]]:
        """The colour scheme of a choropleth: a named scheme, else quantiles of the values."""
        view = self.tile.view
        metric = view.colour or "count"
        if view.bands and view.bands in SCHEMES:
            return metric, list(SCHEMES[view.bands])
        column = next((c for c in view.columns if c.metric == metric), None)
        values = [a.values[metric].value for a in self.data.areas
                  if metric in a.values and a.values[metric].value is not None]
        unit = f" {column.unit}" if column and column.unit else ""
        return metric, list(quantile_bands([v for v in values if v is not None], unit, unit))

    def choropleth_payload(self) -> dict[str, Any]:
        metric, bands = self.area_bands()
        column = next((c for c in self.tile.view.columns if c.metric == metric), None)
        areas: dict[str, dict[str, Any]] = {}
        for a in self.data.areas:
            v = a.values.get(metric or "")
            band = band_for(bands, v.value if v else None, v.label if v else None)
            cell = self.cell(column, v) if column else {"text": fmt(v.value if v else None)}
            areas[a.district] = {
                "colour": band.colour, "ink": band.ink, "band": band.key,
                "title": f"{self.district(a.district)}: {cell['text']}",
            }
        return {"areas": areas, "focus": self.result.params.district,
                "legend": [{"key": b.key, "title": b.title(self.lang), "colour": b.colour,
                            "ink": b.ink, "cls": b.cls} for b in bands],
                "legend_title": column.title.pick(self.lang) if column else ""}

    def area_name(self, a: Area) -> str:
        return self.district(a.district)

    # -- charts ----------------------------------------------------------------------------------

    def chart_payload(self) -> dict[str, Any]:
        s = self.data.series
        if s is None:
            return {"x": [], "series": []}
        wanted = self.tile.view.series or ()
        series = [
            {"key": spec.key, "label": spec.title.pick(self.lang), "colour": spec.colour,
             "dash": spec.dash, "values": s.ys.get(spec.key, [])}
            for spec in wanted if spec.key in s.ys and any(v is not None for v in s.ys[spec.key])
        ]
        y = self.tile.view.y_title
        return {"x": s.x, "series": series, "bucket_s": s.bucket_s,
                "y_title": y.pick(self.lang) if y else "", "daily": s.bucket_s >= 86400}

    def chart_rows(self) -> list[dict[str, Any]]:
        s = self.data.series
        if s is None:
            return []
        payload = self.chart_payload()
        daily = s.bucket_s >= 86400
        out = []
        for i, x in enumerate(s.x):
            ts = datetime.fromtimestamp(x, HKT)
            cells = []
            for spec in payload["series"]:
                v = spec["values"][i] if i < len(spec["values"]) else None
                cells.append(fmt(v, 0 if daily else 1))
            out.append({"when": ts.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"),
                        "iso": ts.isoformat(), "cells": cells})
        return out


def render_tile(result: TileResult, lang: str) -> str:
    from citypulse.web.templating import env

    view = TileView(result, lang)
    tile = result.tile
    ctx = {
        "v": view,
        "tile": tile,
        "data": result.data,
        "status": result.status,
        "result": result,
        "lang": lang,
        "html_lang": LANGUAGES[lang].tag,
        "_": view._,
        "pick": view.pick,
        "url": view.url,
        "hkt": hkt,
        "iso": iso,
        "fmt": fmt,
        "json_script": json_script,
        "districts": BY_ID,
    }
    return env.get_template("dashboards/_tile.html").render(ctx)
