"""The catalogue as one object: storage, search snapshot and the local (feed) datasets."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from citypulse.catalogue.db import CatalogueDB
from citypulse.catalogue.search import IndexHolder, SearchIndex, SearchParams, SearchResult

CATALOGUE_FILE = "catalogue.sqlite"


class Catalogue:
    def __init__(self, path: str | Path, *, sync_feeds: bool = True) -> None:
        self.db = CatalogueDB(path)
        self.holder = IndexHolder(self.db)
        if sync_feeds:
            self.sync_feeds()

    def sync_feeds(self) -> int:
        """Bring the feed datasets in line with the registry (new feed modules appear)."""
        from citypulse.catalogue.feeds import sync_feed_datasets

        return sync_feed_datasets(self.db)

    def index(self) -> SearchIndex:
        return self.holder.get()

    def search(self, params: SearchParams) -> SearchResult:
        return self.index().search(params)

    def close(self) -> None:
        self.db.close()


_open: dict[str, Catalogue] = {}
_open_lock = threading.Lock()


def catalogue_path(data_dir: Path) -> Path:
    return data_dir / CATALOGUE_FILE


def open_catalogue(data_dir: Path, *, sync_feeds: bool = True) -> Catalogue:
    """The process-wide catalogue of a data folder (opened once, shared by threads)."""
    path = str(catalogue_path(data_dir).resolve())
    with _open_lock:
        cat = _open.get(path)
        if cat is None:
            cat = Catalogue(path, sync_feeds=sync_feeds)
            _open[path] = cat
        return cat


def catalogue_for(state: Any) -> Catalogue:
    """The catalogue of a web app (``app.state``): set explicitly (tests) or opened lazily
    from ``settings.data_dir`` on first use, since routers cannot hook app start-up."""
    cat = getattr(state, "catalogue", None)
    if isinstance(cat, Catalogue):
        return cat
    from citypulse.config import default_data_dir

    settings = getattr(state, "settings", None)
    data_dir = Path(getattr(settings, "data_dir", None) or default_data_dir())
    cat = open_catalogue(data_dir)
    state.catalogue = cat
    return cat
