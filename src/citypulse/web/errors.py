"""No stack traces to clients: an unhandled exception becomes a generic 500 (JSON for the APIs,
a small HTML page for people) carrying a request id; the traceback goes to the log under the
same id, so a user's report ("request 3f2a...") leads straight to it.

Starlette runs the ``Exception`` handler in its outermost ``ServerErrorMiddleware``, outside
the security middleware, so the handler adds the security headers and ``X-Request-ID`` itself.
The exception is re-raised after the response is sent (Starlette's behaviour), so the server
logs it as well; clients never see more than the id.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from starlette.responses import Response

from citypulse.web.security import REQUEST_ID_HEADER, error_body, request_id_of, security_headers

log = logging.getLogger("citypulse.web.errors")

GENERIC_MESSAGE = "Internal server error. Quote the request id when you report it."


async def internal_error(request: Request, exc: Exception) -> Response:
    """The 500 response for an unhandled exception (details only in the log)."""
    scope = request.scope
    rid = request_id_of(scope)
    if rid is None:  # the security middleware is not installed: make an id here
        rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
    log.error(
        "request %s failed: %s %s",
        rid,
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    body, content_type = error_body(scope, 500, "internal-error", GENERIC_MESSAGE)
    hsts = getattr(getattr(request.app.state, "settings", None), "hsts_max_age", 0)
    headers = {
        k.decode(): v.decode()
        for k, v in security_headers(request.url.path, hsts_max_age=int(hsts or 0))
    }
    headers[REQUEST_ID_HEADER] = rid
    return Response(body, status_code=500, media_type=content_type.decode(), headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers (``create_app`` calls this)."""
    app.add_exception_handler(Exception, internal_error)
