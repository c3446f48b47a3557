"""The feed registry: every module in ``citypulse.feeds`` that defines ``SPEC`` is a feed.

Discovery by module keeps adding a feed to one new file, with no central list to edit.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from functools import cache
from pathlib import Path

from citypulse.feeds.base import FeedSpec

_NOT_FEEDS = {"base", "registry", "reference"}


@cache
def all_feeds() -> dict[str, FeedSpec]:
    import citypulse.feeds as pkg

    feeds: dict[str, FeedSpec] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in _NOT_FEEDS or info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"citypulse.feeds.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, FeedSpec):
            if spec.id in feeds:
                raise RuntimeError(f"feed id {spec.id!r} registered twice")
            feeds[spec.id] = spec
    return dict(sorted(feeds.items()))


def get_feed(feed_id: str) -> FeedSpec:
    try:
        return all_feeds()[feed_id]
    except KeyError:
        known = ", ".join(all_feeds())
        raise KeyError(f"unknown feed {feed_id!r}; known feeds: {known}") from None


def feed_for_file(path: Path) -> FeedSpec | None:
    """Which feed a recorded payload file belongs to: its folder name if that is a feed id,
    else the first feed whose file patterns match the file name."""
    feeds = all_feeds()
    if path.parent.name in feeds:
        return feeds[path.parent.name]
    for spec in feeds.values():
        if any(fnmatch.fnmatch(path.name, pat) for pat in spec.file_patterns):
            return spec
    return None
