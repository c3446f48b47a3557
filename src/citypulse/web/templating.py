"""Jinja2 rendering with the request's language: every page template gets ``_`` (gettext),
``lang``, ``url`` (a path in the current language) and ``alt_urls`` (this page in each language)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from citypulse.web.i18n import LANGUAGES, gettext, localized_path, pick

TEMPLATES_DIR = Path(__file__).parent / "templates"

env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html", "xml"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def request_lang(request: Request) -> str:
    return str(getattr(request.state, "lang", "en"))


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    lang = request_lang(request)
    path = str(getattr(request.state, "unprefixed_path", request.url.path))
    settings = getattr(request.app.state, "settings", None)
    query = f"?{request.url.query}" if request.url.query else ""
    ctx: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "html_lang": LANGUAGES[lang].tag,
        "_": lambda s: gettext(lang, s),
        "pick": lambda en, zh: pick(lang, en, zh),
        "url": lambda p: localized_path(p, lang),
        # The same page in each language, filters included (a list keeps its query).
        "alt_urls": {t: localized_path(path, t) + query for t in LANGUAGES},
        "languages": LANGUAGES,
        "current_path": path,
        "demo": bool(getattr(settings, "demo", False)),
    }
    ctx.update(context or {})
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status_code)
