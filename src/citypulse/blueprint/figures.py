"""Headline figure tiles for the home page, picked from ``figures.yaml``.

Each tile is one series (group + name) and shows its latest value with ``as_of`` and source,
plus the earlier values so growth is visible. The Chinese labels and units are ours; a unit we
have no translation for falls back to English with a 'translation missing' marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from citypulse.blueprint.dates import sort_key
from citypulse.blueprint.models import HeadlineFigure


@dataclass(frozen=True, slots=True)
class TileSpec:
    group: str
    name: str
    label_en: str
    label_zh: str


TILES: tuple[TileSpec, ...] = (
    TileSpec("blueprint", "Blueprint 2.0 initiatives", "Blueprint 2.0 initiatives", "藍圖2.0措施"),
    TileSpec("open_data", "Datasets on DATA.GOV.HK", "Datasets on DATA.GOV.HK", "資料一線通數據集"),
    TileSpec(
        "wifi", "Free public Wi-Fi hotspots", "Free public Wi-Fi hotspots", "免費公共Wi-Fi熱點"
    ),
    TileSpec("fps", "FPS registrations", "Faster Payment System registrations", "轉數快登記"),
    TileSpec("iam_smart", "Registered users", "iAM Smart registered users", "「智方便」登記用戶"),
    TileSpec(
        "infrastructure",
        "Smart lampposts installed (pilot completed)",
        "Smart lampposts installed",
        "已安裝的智慧燈柱",
    ),
    TileSpec("ranking", "IMD Smart City Index", "IMD Smart City Index", "IMD智慧城市指數"),
    TileSpec(
        "ranking",
        "IMD World Digital Competitiveness Ranking",
        "IMD World Digital Competitiveness",
        "IMD世界數碼競爭力排名",
    ),
)

UNITS_ZH: dict[str, str] = {
    "initiatives": "項措施",
    "datasets": "個數據集",
    "datasets (over)": "個數據集（以上）",
    "hotspots": "個熱點",
    "hotspots (over)": "個熱點（以上）",
    "registrations": "個登記",
    "registrations (over)": "個登記（以上）",
    "registrations (around)": "個登記（約）",
    "users": "名用戶",
    "users (over)": "名用戶（以上）",
    "lampposts (over)": "支燈柱（以上）",
    "rank": "名",
    "rank (world)": "名（全球）",
    "rank (of 118)": "名（共118個城市）",
    "rank (of 142)": "名（共142個城市）",
    "rank (world, of 67)": "名（全球，共67個經濟體）",
    "rank (world, of 69)": "名（全球，共69個經濟體）",
    "rank (world); 1st in Asia-Pacific": "名（全球）；亞太區第1",
}


@dataclass(frozen=True, slots=True)
class Tile:
    spec: TileSpec
    latest: HeadlineFigure
    earlier: tuple[HeadlineFigure, ...]  # oldest first

    @property
    def unit_zh(self) -> str | None:
        return UNITS_ZH.get(self.latest.unit)


def headline_tiles(figures: Sequence[HeadlineFigure]) -> list[Tile]:
    """Tiles in TILES order; a spec whose series is missing from the data is left out."""
    tiles: list[Tile] = []
    for spec in TILES:
        series = sorted(
            (f for f in figures if f.group == spec.group and f.name == spec.name),
            key=lambda f: sort_key(f.as_of),
        )
        if series:
            tiles.append(Tile(spec, series[-1], tuple(series[:-1])))
    return tiles


def format_number(value: int | float | str, lang: str, *, compact: bool = False) -> str:
    """Digits with separators; ``compact`` gives '9.2 million' / '920萬' for big numbers.
    Strings ('130+', '5-10') are shown as they are."""
    if isinstance(value, str):
        return value
    if compact and abs(value) >= 10_000 and lang.startswith("zh"):
        if abs(value) >= 100_000_000:
            return f"{value / 100_000_000:,.4g}億"
        return f"{value / 10_000:,.4g}萬"
    if compact and abs(value) >= 1_000_000 and not lang.startswith("zh"):
        if abs(value) >= 1_000_000_000:
            return f"{value / 1_000_000_000:,.3g} billion"
        return f"{value / 1_000_000:,.3g} million"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,}"
    return f"{int(value):,}"
