"""Atom feed of progress updates (office edits and dated milestones), built with lxml so every
value is escaped by the serializer rather than by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

from lxml import etree

from citypulse.blueprint.service import HKT, Update

ATOM_NS = "http://www.w3.org/2005/Atom"
_A = "{" + ATOM_NS + "}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, _A + tag, attrs)
    if text is not None:
        el.text = text
    return el


def entry_id(u: Update) -> str:
    if u.kind == "edit" and u.edit is not None:
        return f"urn:citypulse:initiative:{u.initiative.id}:edit:{u.edit.id}"
    return f"urn:citypulse:initiative:{u.initiative.id}:milestone:{u.index}:{u.date_text}"


def entry_updated(u: Update) -> datetime:
    if u.at is not None:
        return u.at.astimezone(UTC)
    return datetime.combine(u.day, time(0, 0), HKT).astimezone(UTC)


def build_feed(
    updates: Sequence[Update],
    *,
    base_url: str,
    self_path: str,
    lang: str,
    title: str,
    edit_title: str,
    milestone_title: str,
) -> bytes:
    """``edit_title``/``milestone_title`` are %-templates with ``title`` and ``date``/``user``."""
    zh = lang.startswith("zh")
    base = base_url.rstrip("/")
    prefix = "/zh-hant" if zh else ""
    root = etree.Element(_A + "feed", nsmap={None: ATOM_NS})
    root.set("{http://www.w3.org/XML/1998/namespace}lang", "zh-Hant" if zh else "en")
    _sub(root, "id", f"urn:citypulse:initiatives:updates:{'zh-hant' if zh else 'en'}")
    _sub(root, "title", title)
    newest = max((entry_updated(u) for u in updates), default=datetime(2020, 1, 1, tzinfo=UTC))
    _sub(root, "updated", newest.isoformat())
    _sub(root, "link", rel="self", href=base + self_path, type="application/atom+xml")
    _sub(root, "link", rel="alternate", href=f"{base}{prefix}/initiatives", type="text/html")
    author = _sub(root, "author")
    _sub(author, "name", "citypulse")
    _sub(root, "generator", "citypulse")
    for u in updates:
        item = u.initiative
        name = (item.title_zh_hant or item.title_en) if zh else item.title_en
        entry = _sub(root, "entry")
        _sub(entry, "id", entry_id(u))
        if u.kind == "edit":
            heading = edit_title % {"title": name, "user": u.username or ""}
        else:
            heading = milestone_title % {"title": name, "date": u.date_text}
        _sub(entry, "title", heading)
        _sub(entry, "updated", entry_updated(u).isoformat())
        link = f"{base}{prefix}/initiatives/{item.id}"
        _sub(
            entry,
            "link",
            rel="alternate",
            href=link + ("#history" if u.kind == "edit" else ""),
            type="text/html",
        )
        if u.username:
            a = _sub(entry, "author")
            _sub(a, "name", u.username)
        _sub(entry, "category", term=item.area)
        summary = u.text
        if u.kind == "edit" and u.edit is not None:
            changed = ", ".join(sorted(u.edit.after))
            summary = f"{u.text} [{changed}]"
            if "status" in u.edit.after:
                summary += f" status: {u.edit.before.get('status')} → {u.edit.after['status']}"
        _sub(entry, "summary", summary)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True))
