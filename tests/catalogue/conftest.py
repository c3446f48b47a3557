"""Fixtures of the catalogue tests: an empty catalogue, the replayed DATA.GOV.HK source and a
catalogue pre-loaded with the recorded datasets (both languages merged)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ckan_replay import FIXTURES, ReplayCKAN

from citypulse.catalogue.harvest import merge_languages
from citypulse.catalogue.service import Catalogue


def recorded(prefix: str, action: str, ident: str | None = None) -> Any:
    path = FIXTURES / prefix / (f"{action}/{ident}.json" if ident else f"{action}.json")
    return json.loads(path.read_text(encoding="utf-8"))["result"]


def recorded_packages() -> list[dict[str, Any]]:
    """The recorded datasets, English and Chinese merged, read straight from the files."""
    return [
        merge_languages({
            "en": recorded("en-data", "package_show", name),
            "zh_Hant": recorded("tc-data", "package_show", name),
        })
        for name in recorded("en-data", "package_list")
    ]


@pytest.fixture
def empty_catalogue(tmp_path: Path) -> Iterator[Catalogue]:
    cat = Catalogue(tmp_path / "catalogue.sqlite", sync_feeds=False)
    yield cat
    cat.close()


@pytest.fixture
def loaded_catalogue(empty_catalogue: Catalogue) -> Catalogue:
    empty_catalogue.db.upsert_packages(recorded_packages(), source="recorded")
    return empty_catalogue


@pytest.fixture
def replay() -> Iterator[tuple[ReplayCKAN, str]]:
    server = ReplayCKAN()
    url = server.start()
    yield server, url
    server.stop()
