"""Web glue shared by the portal's routers (home, initiatives, auth): the per-app Portal, the
signed-in session, CSRF tokens, secure cookies, the login rate limiter and page rendering with the
portal's template helpers (bilingual content with a visible 'translation missing' marker)."""

from __future__ import annotations

import gzip
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape

from citypulse.blueprint.dates import format_loose_date
from citypulse.blueprint.db import PortalDB, Session
from citypulse.blueprint.figures import format_number
from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.models import is_url
from citypulse.blueprint.registry import area_info
from citypulse.blueprint.service import HKT, Portal
from citypulse.web.i18n import gettext, localized_path
from citypulse.web.templating import render, request_lang

SESSION_COOKIE = "cp_session"
CSRF_COOKIE = "cp_csrf"
CSRF_FIELD = "csrf_token"
_init_lock = threading.Lock()

STATUS_LABELS: Mapping[str, str] = {
    "planned": "Planned",
    "in_progress": "In progress",
    "launched": "Launched",
    "ongoing": "Ongoing",
    "completed": "Completed",
    "ended": "Ended",
    "unknown": "Unknown",
}
EVIDENCE_LABELS: Mapping[str, str] = {
    "sourced": "Sourced",
    "partly_sourced": "Partly sourced",
    "concept_only": "Concept only",
    "seed_only": "Presentation only",
}
FIELD_LABELS: Mapping[str, str] = {
    "title_en": "Title (English)",
    "title_zh_hant": "Title (Chinese)",
    "summary": "Summary (English)",
    "summary_zh_hant": "Summary (Chinese)",
    "owner": "Owner",
    "status": "Progress status",
    "status_as_of": "Status as of",
    "notes": "Notes",
    "milestones": "Milestones",
    "sources": "Sources",
    "note": "Change note",
    "form": "Form",
}


# -- the per-app portal ---------------------------------------------------------------------------
def get_portal(request: Request) -> Portal:
    """The app's Portal, created on first use from ``settings.data_dir`` (tests may pre-set
    ``app.state.portal``). The YAML itself is validated when the routers are imported."""
    state = request.app.state
    portal: Portal | None = getattr(state, "portal", None)
    if portal is None:
        with _init_lock:
            portal = getattr(state, "portal", None)
            if portal is None:
                settings = getattr(state, "settings", None)
                data_dir = Path(getattr(settings, "data_dir", None) or "citypulse-data")
                portal = Portal(shipped_blueprint(), PortalDB(data_dir / "portal.sqlite"))
                state.portal = portal
    return portal


# -- login rate limit ----------------------------------------------------------------------------
class LoginRateLimiter:
    """Sliding-window limit on login attempts per (client IP, username) and per IP overall.
    In memory, per process: enough to stop password guessing through one server."""

    def __init__(
        self,
        per_user: int = 5,
        per_ip: int = 30,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_ip = per_ip
        self.window_s = window_s
        self.clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._hits.setdefault(key, deque())
        while q and now - q[0] >= self.window_s:
            q.popleft()
        return q

    def retry_after(self, ip: str, username: str) -> float:
        """Seconds to wait before another attempt is allowed (0: allowed now)."""
        now = self.clock()
        with self._lock:
            waits = []
            for key, limit in (((ip, username.casefold()), self.per_user), ((ip, ""), self.per_ip)):
                q = self._prune(key, now)
                if len(q) >= limit:
                    waits.append(self.window_s - (now - q[0]))
            return max(waits, default=0.0)

    def hit(self, ip: str, username: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._hits) > 50_000:  # bounded memory under a username-spraying attack
                self._hits.clear()
            self._prune((ip, username.casefold()), now).append(now)
            self._prune((ip, ""), now).append(now)

    def reset(self, ip: str, username: str) -> None:
        with self._lock:
            self._hits.pop((ip, username.casefold()), None)


def get_limiter(request: Request) -> LoginRateLimiter:
    state = request.app.state
    limiter: LoginRateLimiter | None = getattr(state, "portal_login_limiter", None)
    if limiter is None:
        with _init_lock:
            limiter = getattr(state, "portal_login_limiter", None)
            if limiter is None:
                limiter = LoginRateLimiter()
                state.portal_login_limiter = limiter
    return limiter


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- sessions, cookies, CSRF ---------------------------------------------------------------------
_NO_SESSION = object()


def current_session(request: Request) -> Session | None:
    cached = getattr(request.state, "portal_session", _NO_SESSION)
    if cached is not _NO_SESSION:
        return cached  # type: ignore[return-value]
    token = request.cookies.get(SESSION_COOKIE, "")
    session = get_portal(request).db.session(token) if token else None
    request.state.portal_session = session
    return session


def cookie_secure(request: Request) -> bool:
    """Secure cookies behind HTTPS: forced by ``settings.cookie_secure`` or
    ``CITYPULSE_COOKIE_SECURE=1``, otherwise when the request itself came over HTTPS."""
    setting = getattr(getattr(request.app.state, "settings", None), "cookie_secure", None)
    if isinstance(setting, bool):
        return setting
    env = os.environ.get("CITYPULSE_COOKIE_SECURE", "").strip().lower()
    if env in ("1", "true", "yes"):
        return True
    if env in ("0", "false", "no"):
        return False
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure(request)
    )


def csrf_token(request: Request) -> str:
    """The token forms must echo: the session's own token when signed in, else an anonymous
    double-submit token kept in an HttpOnly cookie (set by :func:`page` when first issued)."""
    session = current_session(request)
    if session is not None:
        return session.csrf_token
    issued: str | None = getattr(request.state, "portal_new_csrf", None)
    if issued:
        return issued
    existing = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(existing) <= 100:
        return existing
    token = secrets.token_urlsafe(32)
    request.state.portal_new_csrf = token
    return token


def csrf_ok(request: Request, submitted: str | None) -> bool:
    if not submitted:
        return False
    session = current_session(request)
    expected = session.csrf_token if session else request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), submitted.encode())


def finish(request: Request, response: Response) -> Response:
    """Attach the anonymous CSRF cookie if this request issued one."""
    token = getattr(request.state, "portal_new_csrf", None)
    if token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=cookie_secure(request),
        )
    response.headers.setdefault("Cache-Control", "no-store" if _private(request) else "no-cache")
    return response


def _private(request: Request) -> bool:
    return bool(request.cookies.get(SESSION_COOKIE)) or bool(
        getattr(request.state, "portal_new_csrf", None)
    )


def safe_next(value: str | None) -> str:
    """Only local paths: never an open redirect to another site."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def unprefixed_path(request: Request) -> str:
    return str(getattr(request.state, "unprefixed_path", request.url.path))


def login_redirect(request: Request) -> RedirectResponse:
    lang = request_lang(request)
    here = unprefixed_path(request)
    if request.url.query:
        here += "?" + request.url.query
    target = localized_path("/login", lang) + "?next=" + quote(here, safe="/")
    return RedirectResponse(target, status_code=303)


# -- rendering -----------------------------------------------------------------------------------
def _translator(lang: str) -> Callable[[str], str]:
    return lambda s: gettext(lang, s)


def bilingual(lang: str, en: str | None, zh: str | None, *, block: bool = False) -> Markup:
    """Content in the page language; when only the other language exists, show it (tagged with
    its ``lang`` for screen readers) followed by a visible 'translation missing' marker."""
    zh_page = lang.startswith("zh")
    want, other = (zh, en) if zh_page else (en, zh)
    if want:
        return Markup(escape(want))
    if not other:
        return Markup("")
    other_tag = "en" if zh_page else "zh-Hant"
    marker = gettext(lang, "translation missing")
    tag = "div" if block else "span"
    return Markup(
        f'<{tag} lang="{other_tag}" class="fallback">{escape(other)}</{tag}> '
        f'<span class="tr-missing">({escape(marker)})</span>'
    )


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    lang = request_lang(request)
    _ = _translator(lang)
    session = current_session(request)
    ctx: dict[str, Any] = {
        "user": session.user if session else None,
        "csrf_token": lambda: csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "tr": lambda en, zh, block=False: bilingual(lang, en, zh, block=block),
        "fmt_date": lambda text: format_loose_date(text, lang) if text else "",
        "fmt_num": lambda v, compact=False: format_number(v, lang, compact=compact),
        "status_label": lambda s: _(STATUS_LABELS.get(s, s)),
        "evidence_label": lambda e: _(EVIDENCE_LABELS.get(e, e)),
        "field_label": lambda f: _(FIELD_LABELS.get(f, f)),
        "area_name": lambda a: _area_name(lang, a),
        "is_url": is_url,
        "show_value": lambda f, v: show_value(lang, f, v),
        "hkt_zone": HKT,
        "colon": "：" if lang.startswith("zh") else ": ",
        "path": unprefixed_path(request),
    }
    ctx.update(context or {})
    response: HTMLResponse = render(request, template, ctx, status_code=status_code)
    return finish(request, response)


def show_value(lang: str, name: str, value: Any) -> Markup:
    """A field value in the history table: statuses translated, lists one item per line."""
    if value is None or value == "" or value == []:
        return Markup('<span class="muted">—</span>')
    if name == "status" and isinstance(value, str):
        return Markup(escape(gettext(lang, STATUS_LABELS.get(value, value))))
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, Mapping):
                lines.append(f"{v.get('date', '')} | {v.get('event', '')}")
            else:
                lines.append(str(v))
        return Markup("<br>").join(escape(line) for line in lines)
    return Markup(escape(str(value)))


def _area_name(lang: str, area_id: str) -> str:
    info = area_info(area_id)
    if info is None:
        return area_id
    return info.name_zh if lang.startswith("zh") else info.name_en


class PageCache:
    """Rendered pages for anonymous readers, keyed by language, URL and a data version.

    Most traffic is anonymous and the content changes only when an edit is saved (the key holds
    the edit-log marker) or a live value changes (the home page puts its live tiles in the key),
    so a hit skips template rendering entirely. Signed-in users always get a fresh page."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, tuple[int, bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[int, bytes, bytes] | None:
        """(status, body, gzipped body): compressed once here, not on every hit."""
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: Hashable, status: int, body: bytes) -> None:
        gz = gzip.compress(body, compresslevel=6, mtime=0)
        with self._lock:
            self._data[key] = (status, body, gz)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)


def get_page_cache(request: Request) -> PageCache:
    state = request.app.state
    cache: PageCache | None = getattr(state, "portal_page_cache", None)
    if cache is None:
        with _init_lock:
            cache = getattr(state, "portal_page_cache", None)
            if cache is None:
                cache = PageCache()
                state.portal_page_cache = cache
    return cache


async def cached_page(
    request: Request, extra: Hashable, build: Callable[[], Awaitable[Response]]
) -> Response:
    """``build()`` once per (language, URL, edit marker, ``extra``) for anonymous readers."""
    if request.cookies.get(SESSION_COOKIE) and current_session(request) is not None:
        return await build()
    key = (
        request_lang(request),
        unprefixed_path(request),
        request.url.query,
        get_portal(request).snapshot().marker,
        extra,
    )
    cache = get_page_cache(request)
    hit = cache.get(key)
    if hit is not None:
        status, body, gz = hit
        headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"  # the app's GZip middleware passes it through
            return HTMLResponse(gz, status_code=status, headers=headers)
        return HTMLResponse(body, status_code=status, headers=headers)
    response = await build()
    if response.status_code == 200 and "set-cookie" not in response.headers:
        cache.put(key, response.status_code, bytes(response.body))
    return response


def error_page(request: Request, status_code: int, title: str, message: str = "") -> Response:
    """An HTML error page; ``title`` is an English msgid, ``message`` already final text."""
    _ = _translator(request_lang(request))
    return page(
        request,
        "portal/error.html",
        {"status": status_code, "title": _(title), "message": message},
        status_code=status_code,
    )


def forbidden(request: Request) -> Response:
    _ = _translator(request_lang(request))
    return error_page(
        request, 403, "Not allowed", _("Your account does not have permission for this page.")
    )


def require(request: Request, role: str) -> Session | Response:
    """The session if its user has ``role`` (editor: editors and admins), else a redirect to the
    login page (anonymous) or a 403 page (signed in without the role)."""
    session = current_session(request)
    if session is None:
        return login_redirect(request)
    user = session.user
    if (role == "editor" and not user.can_edit) or (role == "admin" and not user.is_admin):
        return forbidden(request)
    return session
