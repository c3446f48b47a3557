"""``/docs``: Swagger UI for ``/openapi.json``, served from our own static files.

FastAPI's built-in page loads Swagger UI from a CDN and initialises it with an inline script;
this one uses the npm-pinned copy under ``/static/vendor/swagger-ui`` and an external init
script, so it works offline and under a Content-Security-Policy without ``unsafe-inline``.
(The app is created with ``docs_url=None, redoc_url=None`` so this route owns ``/docs``.)
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from citypulse.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return render(request, "docs.html", {"openapi_url": request.app.openapi_url or ""})
