"""The portal state: shipped YAML + applied edits, validation (nothing saved on error), history,
updates feed and progress recomputed after an edit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from tests.blueprint.support import PASSWORD, make_portal

from citypulse.blueprint.db import User, VersionConflict
from citypulse.blueprint.service import (
    EditRejected,
    Portal,
    milestones_text,
    parse_edit_form,
)


@pytest.fixture()
def portal(tmp_path: Path) -> Portal:
    return make_portal(tmp_path)


@pytest.fixture()
def editor(portal: Portal) -> User:
    return portal.db.add_user("eddie", PASSWORD, "editor")


def test_edit_layers_over_yaml(portal: Portal, editor: User) -> None:
    before = portal.get("mobility-07")
    assert before is not None and before.status == "unknown"
    delivered = portal.progress("mobility").delivered
    edit = portal.save_edit(
        "mobility-07",
        0,
        editor,
        "Superseded by HKeToll tags",
        {"status": "ended", "status_as_of": "2023-12"},
    )
    assert edit.before == {"status": "unknown", "status_as_of": "2018-04"}
    assert edit.after == {"status": "ended", "status_as_of": "2023-12"}
    after = portal.get("mobility-07")
    assert after is not None and after.status == "ended" and after.title_en == before.title_en
    assert portal.version("mobility-07") == 1
    assert portal.progress("mobility").delivered == delivered + 1
    assert [e.note for e in portal.history("mobility-07")] == ["Superseded by HKeToll tags"]
    # a second Portal on the same file (another worker) sees the same state
    other = Portal(portal.data, portal.db)
    assert other.get("mobility-07") == after


def test_rejections_save_nothing(portal: Portal, editor: User) -> None:
    with pytest.raises(EditRejected) as info:
        portal.save_edit("mobility-07", 0, editor, "  ", {"status": "ended"})
    assert [e.name for e in info.value.errors] == ["note"]
    with pytest.raises(EditRejected, match="Nothing was changed"):
        portal.save_edit("mobility-07", 0, editor, "no-op", {"status": "unknown"})
    with pytest.raises(EditRejected) as info:
        portal.save_edit("mobility-07", 0, editor, "bad", {"status_as_of": "someday"})
    assert info.value.errors[0].name == "status_as_of"
    with pytest.raises(KeyError):
        portal.save_edit("nope-01", 0, editor, "x", {"status": "ended"})
    viewer = portal.db.add_user("vera", PASSWORD, "viewer")
    with pytest.raises(PermissionError):
        portal.save_edit("mobility-07", 0, viewer, "x", {"status": "ended"})
    assert portal.db.edits() == []


def test_stale_version_conflicts(portal: Portal, editor: User) -> None:
    portal.save_edit("living-13", 0, editor, "first", {"notes": "first"})
    with pytest.raises(VersionConflict):
        portal.save_edit("living-13", 0, editor, "second", {"notes": "second"})
    item = portal.get("living-13")
    assert item is not None and item.notes == "first"


def test_parse_edit_form() -> None:
    form = {
        "title_en": "  A title ",
        "title_zh_hant": "",
        "summary": "S",
        "summary_zh_hant": "",
        "owner": "TD",
        "status": "launched",
        "status_as_of": "2024-Q3",
        "notes": "",
        "milestones": "2024-07-01 | Started\r\n\r\n2024-Q3 | Rolled out\n",
        "sources": "https://example.org/a\n\nOGCIO presentation\n",
    }
    changes, errors = parse_edit_form(form)
    assert errors == []
    assert changes["title_en"] == "A title" and changes["title_zh_hant"] is None
    assert changes["milestones"] == [
        {"date": "2024-07-01", "event": "Started"},
        {"date": "2024-Q3", "event": "Rolled out"},
    ]
    assert changes["sources"] == ["https://example.org/a", "OGCIO presentation"]
    bad = dict(
        form,
        title_en="",
        status="done",
        status_as_of="x",
        milestones="no bar here\n2024-13 | bad month",
    )
    _, errors = parse_edit_form(bad)
    assert sorted({e.name for e in errors}) == ["milestones", "status", "status_as_of", "title_en"]
    assert [e.params.get("n") for e in errors if e.name == "milestones"] == [1, 2]


def test_milestones_text_round_trip(portal: Portal) -> None:
    item = portal.get("mobility-12")
    assert item is not None
    changes, errors = parse_edit_form(
        {
            "title_en": "t",
            "summary": "s",
            "owner": "o",
            "status": "launched",
            "status_as_of": "2024",
            "milestones": milestones_text(item),
        }
    )
    assert errors == []
    assert changes["milestones"] == [m.model_dump() for m in item.milestones]


def test_updates(portal: Portal, editor: User) -> None:
    today = date(2026, 11, 25)
    updates = portal.updates(500, today=today)
    assert all(u.kind == "milestone" for u in updates)
    days = [u.day for u in updates]
    assert days == sorted(days, reverse=True)
    texts = {u.text for u in updates}
    assert "In service at the first three tunnels" in texts  # mobility-06, 2023-05
    assert not any(t.lower().startswith("target") for t in texts)
    assert all(u.day <= today for u in updates)
    # a year-precision milestone counts only once its year is over
    assert not any(u.date_text == "2026" for u in updates)
    portal.save_edit("economy-13", 0, editor, "Port Community System live", {"notes": "Live."})
    first = portal.updates(1)[0]
    assert first.kind == "edit" and first.initiative.id == "economy-13"
    assert portal.updates(3, area_id="people")[0].initiative.area == "people"
