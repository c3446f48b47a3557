"""The web application: FastAPI serving portal pages (Jinja2), dashboards, the JSON API and SSE.

Routers are discovered: every module in ``citypulse.web.routes`` that defines ``router`` is
included, so a feature adds pages and endpoints in its own file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import ORJSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from citypulse import __version__
from citypulse.config import Settings
from citypulse.store.base import TimeSeriesStore
from citypulse.store.bus import InProcessBus
from citypulse.web.i18n import language_for_path

STATIC_DIR = Path(__file__).parent / "static"

LifespanHook = Callable[[FastAPI], Awaitable[None]]


class LanguagePrefixMiddleware:
    """Serve ``/zh-hant/...`` with the same routes as ``/...``: strip the prefix and remember
    the language in ``request.state``, so every page exists once in code and twice in URLs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            lang, path = language_for_path(scope["path"])
            state = scope.setdefault("state", {})
            state["lang"] = lang
            state["unprefixed_path"] = path
            if path != scope["path"]:
                scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


def discover_routers() -> list[Any]:
    import citypulse.web.routes as pkg

    routers = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"citypulse.web.routes.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            routers.append(router)
    return routers


def create_app(
    settings: Settings,
    store: TimeSeriesStore,
    bus: InProcessBus | None = None,
    *,
    on_startup: list[LifespanHook] | None = None,
    on_shutdown: list[LifespanHook] | None = None,
) -> FastAPI:
    """Build the app around an open store. ``on_startup``/``on_shutdown`` let ``citypulse serve``
    run ingest inside the same process (the embedded store has one owner)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup or []:
            await hook(app)
        try:
            yield
        finally:
            for hook in on_shutdown or []:
                await hook(app)

    app = FastAPI(
        title="citypulse",
        version=__version__,
        description="Smart city portal and real-time city data API (Hong Kong).",
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
        docs_url=None,  # routes/docs.py serves Swagger UI from local files (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.bus = bus or InProcessBus()
    STATIC_DIR.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in discover_routers():
        app.include_router(router)
    # Pages and GeoJSON shrink 10-15x; Starlette leaves text/event-stream uncompressed.
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(LanguagePrefixMiddleware)
    # Hardening (web/security.py, web/errors.py): generic 500s with a request id, then the
    # security middleware last so it is the outermost and sees every response. The backup
    # endpoint is off unless `citypulse serve` publishes a token (citypulse/backup.py).
    from citypulse.backup import router as backup_router
    from citypulse.web import errors, security

    app.include_router(backup_router)
    errors.install(app)
    security.install(app, settings)
    return app
