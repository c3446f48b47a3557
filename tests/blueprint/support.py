"""Shared helpers for the Blueprint portal tests (unit and web): the shipped YAML read
independently of the loader, a cheap password hasher, a fake store and an app with users."""

from __future__ import annotations

import copy
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citypulse.blueprint.db import PortalDB
from citypulse.blueprint.loader import INITIATIVES_FILE, shipped_blueprint
from citypulse.blueprint.service import Portal
from citypulse.config import Settings
from citypulse.store.base import LatestValue
from citypulse.web.app import create_app

PASSWORD = "correct horse battery"
# Argon2 with tiny costs: the tests check behaviour, not hashing strength.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@cache
def _raw_yaml() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data: dict[str, Any] = yaml.load(INITIATIVES_FILE.read_text(encoding="utf-8"), Loader=loader)
    return data


def raw_yaml() -> dict[str, Any]:
    """The shipped initiatives.yaml as plain data (PyYAML only, not our loader); a fresh copy
    each call so tests may mutate it."""
    return copy.deepcopy(_raw_yaml())


def raw_initiatives() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _raw_yaml()["initiatives"]
    return items


def count_ids_by_text() -> int:
    """Initiative entries counted from the text alone: '- id: ' items after 'initiatives:'."""
    text = INITIATIVES_FILE.read_text(encoding="utf-8")
    section = text[text.index("\ninitiatives:\n") :]
    return len(re.findall(r"^- id: ", section, flags=re.MULTILINE))


@dataclass
class FakeStore:
    """Just enough of the TimeSeriesStore for the home page's live tiles."""

    values: dict[str, list[LatestValue]] = field(default_factory=dict)
    fail: bool = False

    def latest(
        self, metric: str, *, kind: str | None = None, entity_ids: Any = None
    ) -> list[LatestValue]:
        if self.fail:
            raise RuntimeError("store is down")
        return list(self.values.get(metric, []))


def make_portal(data_dir: Path) -> Portal:
    return Portal(shipped_blueprint(), PortalDB(data_dir / "portal.sqlite", hasher=FAST_HASHER))


def make_app(data_dir: Path, store: Any = None, **settings: Any) -> FastAPI:
    app = create_app(Settings(data_dir=data_dir, **settings), store or FakeStore())
    portal = make_portal(data_dir)
    for name, role in (
        ("vera", "viewer"),
        ("eddie", "editor"),
        ("erin", "editor"),
        ("ada", "admin"),
    ):
        portal.db.add_user(name, PASSWORD, role)
    app.state.portal = portal
    return app


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_from(page.text),
            "next": "/",
        },
        follow_redirects=False,
    )


def edit_form(client: TestClient, initiative_id: str) -> dict[str, str]:
    """The edit form's current field values, as the browser would submit them."""
    html = client.get(f"/initiatives/{initiative_id}/edit").text
    values: dict[str, str] = {}
    for m in re.finditer(r'<input type="(?:hidden|text)"[^>]*name="([^"]+)" value="([^"]*)"', html):
        values[m.group(1)] = _unescape(m.group(2))
    for m in re.finditer(r'<textarea [^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        values[m.group(1)] = _unescape(m.group(2))
    m = re.search(r'<select id="e-status" name="status".*?</select>', html, re.S)
    assert m
    sel = re.search(r'<option value="([^"]+)" selected>', m.group(0))
    assert sel
    values["status"] = sel.group(1)
    return values


def _unescape(text: str) -> str:
    return html.unescape(text)


def now() -> datetime:
    return datetime.now(UTC)
