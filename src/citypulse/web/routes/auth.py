"""Sign-in for the digital office: login (rate-limited per IP + username), logout, and the admin
page that lists users and changes roles. Sessions are server-side rows in portal.sqlite; the
cookie holds a random token (HttpOnly, SameSite=Lax, Secure behind HTTPS)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from citypulse.blueprint.db import ROLES, SESSION_TTL, UserError
from citypulse.blueprint.web import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    clear_session_cookie,
    client_ip,
    csrf_ok,
    current_session,
    error_page,
    get_limiter,
    get_portal,
    page,
    require,
    safe_next,
    set_session_cookie,
)
from citypulse.web.i18n import gettext, localized_path
from citypulse.web.templating import request_lang

router = APIRouter(include_in_schema=False)


def _expired_form(request: Request) -> Response:
    lang = request_lang(request)
    return error_page(
        request,
        403,
        "Form expired",
        gettext(
            lang,
            "The form was not accepted (security token missing or out of date). "
            "Go back, reload the page and try again.",
        ),
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return page(
        request,
        "portal/login.html",
        {"next": safe_next(request.query_params.get("next")), "username": "", "error": None},
    )


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    lang = request_lang(request)
    form = await request.form()
    username = str(form.get("username") or "").strip()[:100]
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or "/"))
    if not csrf_ok(request, str(form.get(CSRF_FIELD) or "")):
        return _expired_form(request)
    limiter = get_limiter(request)
    ip = client_ip(request)
    wait = limiter.retry_after(ip, username)
    if wait > 0:
        seconds = math.ceil(wait)
        response = page(
            request,
            "portal/login.html",
            {
                "next": next_path,
                "username": username,
                "error": gettext(lang, "Too many sign-in attempts. Try again in %(s)s seconds.")
                % {"s": seconds},
            },
            status_code=429,
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    limiter.hit(ip, username)
    portal = get_portal(request)
    user = await run_in_threadpool(portal.db.verify_password, username, password)
    if user is None:
        return page(
            request,
            "portal/login.html",
            {
                "next": next_path,
                "username": username,
                "error": gettext(lang, "Wrong username or password."),
            },
            status_code=400,
        )
    limiter.reset(ip, username)
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # a fresh token on every sign-in (no session fixation)
        portal.db.delete_session(old)
    token, _session = portal.db.create_session(user)
    response = RedirectResponse(localized_path(next_path, lang), status_code=303)
    set_session_cookie(response, request, token, int(SESSION_TTL.total_seconds()))
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/logout", response_class=HTMLResponse)
async def logout_form(request: Request) -> Response:
    return page(request, "portal/logout.html", {})


@router.post("/logout")
async def logout_submit(request: Request) -> Response:
    form = await request.form()
    if current_session(request) is not None and not csrf_ok(
        request, str(form.get(CSRF_FIELD) or "")
    ):
        return _expired_form(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        get_portal(request).db.delete_session(token)
    response = RedirectResponse(localized_path("/", request_lang(request)), status_code=303)
    clear_session_cookie(response, request)
    return response


@router.get("/admin/users", response_class=HTMLResponse)
async def admin_users(request: Request) -> Response:
    session = require(request, "admin")
    if isinstance(session, Response):
        return session
    return page(
        request,
        "portal/admin_users.html",
        {"users": get_portal(request).db.users(), "roles": ROLES, "message": None, "error": None},
    )


@router.post("/admin/users", response_class=HTMLResponse)
async def admin_users_submit(request: Request) -> Response:
    session = require(request, "admin")
    if isinstance(session, Response):
        return session
    lang = request_lang(request)
    form = await request.form()
    if not csrf_ok(request, str(form.get(CSRF_FIELD) or "")):
        return _expired_form(request)
    db = get_portal(request).db
    action = str(form.get("action") or "")
    username = str(form.get("username") or "").strip()
    role = str(form.get("role") or "")
    message: str | None = None
    error: str | None = None
    try:
        if action == "add":
            password = str(form.get("password") or "")
            await run_in_threadpool(db.add_user, username, password, role)
            message = gettext(lang, "User %(u)s added.") % {"u": username}
        elif action == "set-role":
            if username.casefold() == session.user.username.casefold():
                raise UserError(gettext(lang, "You cannot change your own role."))
            db.set_role(username, role)
            message = gettext(lang, "Role of %(u)s changed.") % {"u": username}
        else:
            raise UserError(gettext(lang, "Unknown action."))
    except UserError as exc:
        error = str(exc)
    return page(
        request,
        "portal/admin_users.html",
        {"users": db.users(), "roles": ROLES, "message": message, "error": error},
        status_code=400 if error else 200,
    )
