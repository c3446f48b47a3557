"""The portal's view of the Blueprint: shipped YAML + the digital office's edits, searchable.

One :class:`Portal` per web app. Reads come from an in-memory snapshot (current initiatives,
versions, search index) rebuilt only when the edit log changes; a cheap ``count/max(id)`` query
per read notices edits saved by another worker process or the CLI.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import ValidationError

from citypulse.blueprint.dates import parse_loose_date
from citypulse.blueprint.db import EditRecord, PortalDB, User, VersionConflict
from citypulse.blueprint.loader import BlueprintData
from citypulse.blueprint.models import EDITABLE_FIELDS, STATUSES, Initiative, Milestone
from citypulse.blueprint.progress import Progress, compute_progress, progress_by_area
from citypulse.blueprint.query import Filters, Page, select
from citypulse.blueprint.registry import area_info
from citypulse.blueprint.search import SearchIndex

log = logging.getLogger(__name__)
HKT = timezone(timedelta(hours=8), "HKT")

MAX_LENGTHS: Mapping[str, int] = {
    "title_en": 300,
    "title_zh_hant": 300,
    "summary": 4000,
    "summary_zh_hant": 4000,
    "owner": 300,
    "notes": 4000,
    "note": 1000,
}


def index_fields(item: Initiative) -> dict[str, str | Sequence[str] | None]:
    info = area_info(item.area)
    return {
        "id": item.id,
        "title_en": item.title_en,
        "title_zh": item.title_zh_hant,
        "summary": item.summary,
        "summary_zh": item.summary_zh_hant,
        "owner": item.owner,
        "area": [info.name_en, info.name_zh] if info else item.area,
        "milestones": [m.event for m in item.milestones],
        "figures": [f"{f.name} {f.unit}" for f in item.figures],
        "notes": item.notes,
    }


@dataclass(frozen=True, slots=True)
class Snapshot:
    marker: tuple[int, int]
    initiatives: tuple[Initiative, ...]
    by_id: Mapping[str, Initiative]
    versions: Mapping[str, int]
    history: Mapping[str, tuple[EditRecord, ...]]
    edits: tuple[EditRecord, ...]  # all, oldest first
    index: SearchIndex
    updates_memo: dict[date, list[Update]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Update:
    """One line of 'latest progress': a dated milestone from the data or an office edit."""

    kind: Literal["milestone", "edit"]
    initiative: Initiative
    day: date
    date_text: str  # loose date for milestones, ISO timestamp for edits
    text: str  # milestone event (English) or the edit's change note
    username: str | None = None
    edit: EditRecord | None = None
    at: datetime | None = None
    index: int = 0  # milestone position, for stable ids


@dataclass(frozen=True, slots=True)
class FieldError:
    name: str  # form field
    message: str  # an English msgid, translated by the page; may contain %(name)s
    params: Mapping[str, Any] = field(default_factory=dict)


class EditRejected(Exception):
    """The form did not validate; nothing was saved."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(e.message % dict(e.params) for e in errors))
        self.errors = errors


def apply_changes(item: Initiative, changes: Mapping[str, Any]) -> Initiative:
    data = item.model_dump()
    data.update(changes)
    return Initiative.model_validate(data)


def editable_values(item: Initiative) -> dict[str, Any]:
    return item.model_dump(include=set(EDITABLE_FIELDS), mode="json")


class Portal:
    def __init__(self, data: BlueprintData, db: PortalDB) -> None:
        self.data = data
        self.db = db
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None

    # -- snapshot -----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        marker = self.db.edit_marker()
        snap = self._snap
        if snap is not None and snap.marker == marker:
            return snap
        with self._lock:
            snap = self._snap
            if snap is None or snap.marker != marker:
                snap = self._build(marker)
                self._snap = snap
        return snap

    def _build(self, marker: tuple[int, int]) -> Snapshot:
        current = {i.id: i for i in self.data.initiatives}
        versions = dict.fromkeys(current, 0)
        history: dict[str, list[EditRecord]] = {}
        edits = self.db.edits()
        for edit in edits:
            item = current.get(edit.initiative_id)
            if item is None:
                log.warning(
                    "edit %s is for unknown initiative %s; ignored", edit.id, edit.initiative_id
                )
                continue
            try:
                current[edit.initiative_id] = apply_changes(item, edit.after)
            except ValidationError as exc:
                log.warning(
                    "edit %s of %s no longer validates; ignored: %s",
                    edit.id,
                    edit.initiative_id,
                    exc,
                )
                continue
            versions[edit.initiative_id] = edit.version
            history.setdefault(edit.initiative_id, []).append(edit)
        items = tuple(current[i.id] for i in self.data.initiatives)
        return Snapshot(
            marker=marker,
            initiatives=items,
            by_id=current,
            versions=versions,
            history={k: tuple(v) for k, v in history.items()},
            edits=tuple(edits),
            index=SearchIndex((i.id, index_fields(i)) for i in items),
        )

    # -- reads --------------------------------------------------------------------------------
    def initiatives(self) -> tuple[Initiative, ...]:
        return self.snapshot().initiatives

    def get(self, initiative_id: str) -> Initiative | None:
        return self.snapshot().by_id.get(initiative_id)

    def version(self, initiative_id: str) -> int:
        return self.snapshot().versions.get(initiative_id, 0)

    def history(self, initiative_id: str) -> tuple[EditRecord, ...]:
        return self.snapshot().history.get(initiative_id, ())

    def search(self, query: str) -> list[tuple[str, float]]:
        return [(h.id, h.score) for h in self.snapshot().index.search(query)]

    def select(self, filters: Filters, *, lang: str = "en", paginate: bool = True) -> Page:
        return select(self.initiatives(), filters, search=self.search, lang=lang, paginate=paginate)

    def progress(self, area_id: str | None = None) -> Progress:
        return compute_progress(self.initiatives(), area_id)

    def progress_by_area(self) -> list[Progress]:
        return progress_by_area(self.initiatives())

    def updates(
        self, limit: int = 10, *, today: date | None = None, area_id: str | None = None
    ) -> list[Update]:
        """Latest progress, newest first: office edits plus milestones whose whole period is
        past ('2026' counts only from 2027) and that are not targets ('Target: ...')."""
        snap = self.snapshot()
        today = today or datetime.now(HKT).date()
        everything = snap.updates_memo.get(today)
        if everything is None:
            everything = self._all_updates(snap, today)
            snap.updates_memo.clear()
            snap.updates_memo[today] = everything
        if area_id:
            return [u for u in everything if u.initiative.area == area_id][:limit]
        return everything[:limit]

    @staticmethod
    def _all_updates(snap: Snapshot, today: date) -> list[Update]:
        out: list[Update] = []
        for edit in snap.edits:
            item = snap.by_id.get(edit.initiative_id)
            if item is None:
                continue
            out.append(
                Update(
                    "edit",
                    item,
                    edit.at.astimezone(HKT).date(),
                    edit.at.isoformat(),
                    edit.note,
                    edit.username,
                    edit,
                    edit.at,
                )
            )
        for item in snap.initiatives:
            for n, m in enumerate(item.milestones):
                when = parse_loose_date(m.date)
                if when.start is None or when.end is None or when.end > today:
                    continue  # undated, or the period is not over yet
                if m.event.lower().startswith(("target", "plan ")):
                    continue  # a goal, not progress
                out.append(Update("milestone", item, when.start, m.date, m.event, index=n))
        out.sort(key=lambda u: (u.day, u.at or datetime.min.replace(tzinfo=UTC)), reverse=True)
        return out

    # -- edits --------------------------------------------------------------------------------
    def save_edit(
        self,
        initiative_id: str,
        base_version: int,
        user: User,
        note: str,
        changes: Mapping[str, Any],
    ) -> EditRecord:
        """Validate and store an edit. Raises KeyError (unknown id), PermissionError,
        EditRejected (nothing changed / invalid) or VersionConflict (stale form)."""
        if not user.can_edit:
            raise PermissionError(f"{user.username} may not edit")
        item = self.get(initiative_id)
        if item is None:
            raise KeyError(initiative_id)
        note = note.strip()
        errors: list[FieldError] = []
        if not note:
            errors.append(FieldError("note", "A change note is required."))
        elif len(note) > MAX_LENGTHS["note"]:
            errors.append(
                FieldError("note", "At most %(n)s characters.", {"n": MAX_LENGTHS["note"]})
            )
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        candidate: Initiative | None = None
        try:
            candidate = apply_changes(item, changes)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = err["loc"]
                name = str(loc[0]) if loc else "form"
                errors.append(FieldError(name, "Invalid value: %(msg)s", {"msg": err["msg"]}))
        if errors or candidate is None:
            raise EditRejected(errors)
        before_all, after_all = editable_values(item), editable_values(candidate)
        changed = [k for k in EDITABLE_FIELDS if before_all[k] != after_all[k]]
        if not changed:
            raise EditRejected([FieldError("form", "Nothing was changed.")])
        edit = self.db.record_edit(
            initiative_id,
            base_version,
            user,
            note,
            {k: before_all[k] for k in changed},
            {k: after_all[k] for k in changed},
        )
        return edit


_MILESTONE_LINE = re.compile(r"^(?P<date>[^|]+?)\s*\|\s*(?P<event>.+)$")


def parse_edit_form(form: Mapping[str, str]) -> tuple[dict[str, Any], list[FieldError]]:
    """Turn the edit form's text fields into model values; collects every error at once so the
    page can show them all next to their fields."""
    errors: list[FieldError] = []
    changes: dict[str, Any] = {}

    def text(name: str, required: bool = False) -> str | None:
        value = (form.get(name) or "").replace("\r\n", "\n").strip()
        if required and not value:
            errors.append(FieldError(name, "This field is required."))
        if len(value) > MAX_LENGTHS.get(name, 4000):
            errors.append(
                FieldError(name, "At most %(n)s characters.", {"n": MAX_LENGTHS.get(name, 4000)})
            )
        return value or None

    changes["title_en"] = text("title_en", required=True)
    changes["title_zh_hant"] = text("title_zh_hant")
    changes["summary"] = text("summary", required=True)
    changes["summary_zh_hant"] = text("summary_zh_hant")
    changes["owner"] = text("owner", required=True)
    changes["notes"] = text("notes")
    status = (form.get("status") or "").strip()
    if status not in STATUSES:
        errors.append(FieldError("status", "Choose a status from the list."))
    changes["status"] = status
    as_of = (form.get("status_as_of") or "").strip()
    try:
        parse_loose_date(as_of)
    except ValueError:
        errors.append(
            FieldError(
                "status_as_of", "Use a date like 2024, 2024-07, 2024-07-15, 2024-Q3 or undated."
            )
        )
    changes["status_as_of"] = as_of

    milestones: list[dict[str, str]] = []
    raw_lines = (form.get("milestones") or "").replace("\r\n", "\n").split("\n")
    for n, line in enumerate(raw_lines, start=1):
        line = line.strip()
        if not line:
            continue
        m = _MILESTONE_LINE.match(line)
        if not m:
            errors.append(FieldError("milestones", "Line %(n)s: write 'date | event'.", {"n": n}))
            continue
        try:
            Milestone(date=m["date"].strip(), event=m["event"].strip())
        except ValidationError:
            errors.append(FieldError("milestones", "Line %(n)s: the date is not valid.", {"n": n}))
            continue
        milestones.append({"date": m["date"].strip(), "event": m["event"].strip()})
    if len(milestones) > 200:
        errors.append(FieldError("milestones", "At most %(n)s lines.", {"n": 200}))
    changes["milestones"] = milestones

    sources = [s.strip() for s in (form.get("sources") or "").replace("\r\n", "\n").split("\n")]
    sources = [s for s in sources if s]
    for n, s in enumerate(sources, start=1):
        is_link = s.startswith(("http://", "https://"))
        if len(s) > 1000 or (is_link and any(ch in s for ch in '<>"')):
            errors.append(FieldError("sources", "Line %(n)s: not a valid source.", {"n": n}))
    changes["sources"] = sources
    return changes, errors


def milestones_text(item: Initiative) -> str:
    return "\n".join(f"{m.date} | {m.event}" for m in item.milestones)


__all__ = [
    "EditRejected",
    "FieldError",
    "Portal",
    "Update",
    "VersionConflict",
    "milestones_text",
    "parse_edit_form",
]
