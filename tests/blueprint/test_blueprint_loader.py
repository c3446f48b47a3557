"""The shipped YAML loads completely, agrees with its own meta counts, and a broken entry stops
start-up with a message naming it."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.blueprint.support import count_ids_by_text, raw_initiatives, raw_yaml

from citypulse.blueprint.loader import (
    FIGURES_FILE,
    INITIATIVES_FILE,
    BlueprintDataError,
    load_blueprint,
    parse_initiatives_document,
    shipped_blueprint,
)
from citypulse.blueprint.registry import AREA_IDS


def test_every_initiative_loads() -> None:
    data = shipped_blueprint()
    raw = raw_initiatives()
    assert len(data.initiatives) == len(raw) == count_ids_by_text() == 124
    assert [i.id for i in data.initiatives] == [r["id"] for r in raw]
    # spot values read straight from the YAML text
    by_id = {i.id: i for i in data.initiatives}
    assert by_id["mobility-06"].title_zh_hant == "易通行"
    assert by_id["mobility-06"].status == "completed"
    assert by_id["living-02"].title_zh_hant == "智方便"
    assert by_id["mobility-12"].milestones[0].date == "2020-Q4"
    assert by_id["environment-13"].figures[0].as_of == "2024-25"


def test_counts_match_the_yaml_meta() -> None:
    meta = raw_yaml()["meta"]["captured"]
    items = shipped_blueprint().initiatives
    assert meta["total"] == len(items)
    assert dict(Counter(i.area for i in items)) == meta["by_area"]
    assert dict(Counter(i.status for i in items)) == meta["by_status"]
    assert dict(Counter(i.evidence for i in items)) == meta["by_evidence"]


def test_areas_and_figures() -> None:
    data = shipped_blueprint()
    assert tuple(a.id for a in data.areas) == AREA_IDS
    raw_figures = yaml.safe_load(FIGURES_FILE.read_text(encoding="utf-8"))["figures"]
    assert len(data.figures) == len(raw_figures) == 72
    assert data.completeness("covid-19")  # spelled covid_19 in the YAML
    assert "Blueprint 2.0 PDF" in data.coverage_note


def test_shipped_copy_matches_shared_data(shared_data: Path) -> None:
    for name in ("initiatives.yaml", "figures.yaml"):
        shared = shared_data / "blueprint" / name
        if not shared.exists():
            pytest.skip(f"{shared} missing")
        ours = INITIATIVES_FILE.parent / name
        assert (
            hashlib.sha256(ours.read_bytes()).digest()
            == hashlib.sha256(shared.read_bytes()).digest()
        ), f"{name} differs from the shared data: re-copy it"


def _doc() -> dict[str, Any]:
    return raw_yaml()


def _entry(doc: dict[str, Any], initiative_id: str) -> dict[str, Any]:
    return next(i for i in doc["initiatives"] if i["id"] == initiative_id)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: _entry(d, "mobility-05").update(status="halfway"), ["'mobility-05'", "status"]),
        (lambda d: _entry(d, "living-03").pop("title_en"), ["'living-03'", "title_en"]),
        (lambda d: _entry(d, "economy-04").update(colour="red"), ["'economy-04'", "colour"]),
        (lambda d: _entry(d, "people-02").update(area="sports"), ["'people-02'", "sports"]),
        (
            lambda d: _entry(d, "government-07")["milestones"].append(
                {"date": "2019-13", "event": "x"}
            ),
            ["'government-07'", "milestones.", "date"],
        ),
        (
            lambda d: _entry(d, "mobility-01")["figures"][0].update(as_of="soon"),
            ["'mobility-01'", "figures.0.as_of"],
        ),
        (
            lambda d: d["initiatives"].append(dict(_entry(d, "covid-19-03"))),
            ["'covid-19-03'", "duplicate"],
        ),
        (
            lambda d: _entry(d, "smart-village-02").update(id="village-02"),
            ["'village-02'", "smart-village-"],
        ),
    ],
)
def test_broken_entry_is_named(mutate: Any, expected: list[str]) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(BlueprintDataError) as info:
        parse_initiatives_document(doc)
    message = str(info.value)
    assert message.startswith("initiatives.yaml: ")
    for part in expected:
        assert part in message


def test_broken_file_fails_load_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "initiatives.yaml"
    text = INITIATIVES_FILE.read_text(encoding="utf-8")
    bad.write_text(text.replace("  status: launched\n", "  status: [launched\n", 1), "utf-8")
    with pytest.raises(BlueprintDataError, match=r"initiatives\.yaml: line \d+ column \d+"):
        load_blueprint(bad, FIGURES_FILE)


def test_broken_figure_is_named(tmp_path: Path) -> None:
    doc = yaml.safe_load(FIGURES_FILE.read_text(encoding="utf-8"))
    doc["figures"][3]["value"] = None
    bad = tmp_path / "figures.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    with pytest.raises(BlueprintDataError, match=r"figures\.yaml: figure #4 \('Blueprint 2\.0 new"):
        load_blueprint(INITIATIVES_FILE, bad)


def test_areas_must_match_registry() -> None:
    doc = _doc()
    doc["areas"][0]["name_zh_hant"] = "智能出行"
    with pytest.raises(BlueprintDataError, match="area 'mobility'"):
        parse_initiatives_document(doc)
