"""The web app built from the environment, for ``citypulse serve --workers N``.

uvicorn starts each of N worker processes from an import string
(``citypulse.web.factory:create_app_from_env`` with ``factory=True``), so every worker opens
its own store connections and bus subscription from ``CITYPULSE_*`` variables that
``citypulse serve`` sets before spawning them. Web workers never ingest: ``citypulse ingest``
does, in its own process, and its updates reach every worker through the Redis bus.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from citypulse.config import Settings
from citypulse.store import open_store
from citypulse.store.redis_bus import RedisBus, open_bus
from citypulse.web.app import create_app

BUS_ENV = "CITYPULSE_BUS"


def create_app_from_env() -> FastAPI:
    """One web worker: store from ``CITYPULSE_STORE``, bus from ``CITYPULSE_BUS`` (empty: an
    in-process bus, i.e. no live updates from other processes)."""
    settings = Settings()
    store = open_store(settings.store_url)
    try:
        bus = open_bus(os.environ.get(BUS_ENV, ""))
    except Exception:
        store.close()
        raise

    async def shutdown(app: FastAPI) -> None:
        if isinstance(bus, RedisBus):
            await bus.aclose()
        store.close()

    app = create_app(settings, store, bus, on_shutdown=[shutdown])
    app.state.role = "web"
    return app
