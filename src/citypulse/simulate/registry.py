"""Discovery of feed simulators: every module here defining ``SIMULATOR``."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from citypulse.simulate.base import FeedSimulator

_NOT_SIMULATORS = {"base", "registry", "profile", "city"}


@cache
def all_simulators() -> dict[str, FeedSimulator]:
    import citypulse.simulate as pkg

    sims: dict[str, FeedSimulator] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in _NOT_SIMULATORS or info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"citypulse.simulate.{info.name}")
        sim = getattr(module, "SIMULATOR", None)
        if sim is not None:
            sims[sim.feed_id] = sim
    return dict(sorted(sims.items()))
