"""Band colours: every chip's text is readable on its fill (WCAG AA 4.5:1), every numeric
scheme covers the whole line, and categorical states find their band by label."""

from __future__ import annotations

import math

import pytest

from citypulse.web.dashboards.bands import (
    NO_DATA,
    SCHEMES,
    SEQUENTIAL,
    SEQUENTIAL_INK,
    band_for,
    quantile_bands,
    stylesheet,
)


def luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_ink_is_readable_on_every_band(scheme: str) -> None:
    for band in SCHEMES[scheme]:
        assert contrast(band.colour, band.ink) >= 4.5, (scheme, band.key)
        assert band.cls == f"b-{scheme}-{band.key}"
    for colour, ink in zip(SEQUENTIAL, SEQUENTIAL_INK, strict=True):
        assert contrast(colour, ink) >= 4.5
    assert contrast(NO_DATA.colour, NO_DATA.ink) >= 4.5


def test_aqhi_follows_the_epd_categories() -> None:
    keys = {v: band_for("aqhi", float(v)).key for v in range(1, 12)}
    assert keys == {1: "low", 2: "low", 3: "low", 4: "moderate", 5: "moderate", 6: "moderate",
                    7: "high", 8: "very_high", 9: "very_high", 10: "very_high", 11: "serious"}
    assert band_for("aqhi", None) is NO_DATA
    assert band_for("aqhi", math.nan) is NO_DATA


def test_states_by_label() -> None:
    assert band_for("vacancy", 0.0, "closed").key == "closed"
    assert band_for("vacancy", 0.0, "count").key == "full"
    assert band_for("vacancy_flag", 1.0, "flag").key == "available"
    assert band_for("saturation", 40.0, "bad").key == "bad"
    assert band_for("alert_state", None, "severe").key == "severe"
    assert band_for("rainfall", 30.0).key == "amber"  # HKO's amber rainstorm level
    assert band_for("rainfall", 0.0).key == "dry"


def test_quantile_bands_cover_the_values() -> None:
    values = [1, 2, 3, 5, 8, 13, 21, 34, 55, 3000]
    bands = quantile_bands([float(v) for v in values])
    assert 2 <= len(bands) <= 5
    for v in values:
        assert band_for(bands, float(v)) is not NO_DATA
    assert quantile_bands([]) == ()
    css = stylesheet()
    assert all(f".{b.cls} " in css for b in bands)
