"""Web hardening in one pure ASGI middleware: security headers, a request id, request body
limits and per-client rate limits on writes.

Why one pure ASGI layer rather than several ``BaseHTTPMiddleware``: it never buffers a
response (SSE streams pass straight through), costs one function call per message, and sees
every response of the app, including 404s and the 413/429 it produces itself. (500s are built
by Starlette's outermost ``ServerErrorMiddleware``, outside every user middleware, so
``web/errors.py`` adds the same headers to them with :func:`security_headers`.)

Policy:

* ``Content-Security-Policy`` without ``unsafe-inline`` or ``unsafe-eval`` for scripts: pages
  load scripts only from ``/static`` and pass data in ``<script type="application/json">``
  islands, which are never executed. Swagger UI under ``/docs`` gets the same policy (checked
  in Chromium by ``tests/web/test_security_browser.py``).
* Frames: ``frame-ancestors 'none'`` plus ``X-Frame-Options: DENY`` for old browsers.
* ``Strict-Transport-Security`` only when ``Settings.hsts_max_age`` > 0: a browser that sees it
  refuses plain HTTP for that long, so it is opt-in for HTTPS deployments.
* A header a route set itself (e.g. its own CSP) is kept: the middleware only fills gaps.
* Bodies: a declared ``Content-Length`` over the limit is refused before reading; a chunked
  body is read up to the limit and refused as soon as it goes over (413 either way).
* Writes: a token bucket per (client address, rule). Limits are per process; behind a reverse
  proxy run uvicorn with ``--proxy-headers`` so the client address is the real one.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citypulse.config import Settings

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)
REFERRER_POLICY = "strict-origin-when-cross-origin"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REQUEST_ID_HEADER = "x-request-id"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(second|minute|hour|s|m|h)\s*$", re.IGNORECASE)
_PERIOD_S = {"second": 1.0, "s": 1.0, "minute": 60.0, "m": 60.0, "hour": 3600.0, "h": 3600.0}


def parse_rate(text: str) -> tuple[float, float]:
    """``"120/minute"`` -> (capacity 120, refill 2.0 per second). ValueError when malformed."""
    m = _RATE.match(text)
    if m is None:
        raise ValueError(f"rate limit {text!r} is not like '120/minute', '5/second', '1000/hour'")
    count = float(m[1])
    return count, count / _PERIOD_S[m[2].lower()]


def security_headers(
    path: str, *, hsts_max_age: int = 0, csp: str = CSP
) -> list[tuple[bytes, bytes]]:
    """The headers every response carries (``path`` kept for per-path policies)."""
    headers = [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", REFERRER_POLICY.encode()),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", PERMISSIONS_POLICY.encode()),
    ]
    if hsts_max_age > 0:
        headers.append(
            (b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode())
        )
    return headers


def request_id_of(scope: Scope) -> str | None:
    """The id the middleware gave this request (also in the ``X-Request-ID`` response header)."""
    state = scope.get("state")
    rid = state.get("request_id") if isinstance(state, dict) else None
    return rid if isinstance(rid, str) else None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class RateRule:
    prefix: str
    capacity: float
    per_s: float


@dataclass(slots=True)
class RateLimiter:
    """Token buckets per (client, rule). ``check`` returns None to let a write through, else
    the seconds until one token is back (for ``Retry-After``). Single-threaded by design: it
    runs in the event loop."""

    rules: Sequence[RateRule]
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 50_000
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)

    @classmethod
    def from_mapping(
        cls, limits: Mapping[str, str], clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        rules = []
        for prefix, text in limits.items():
            capacity, per_s = parse_rate(text)
            rules.append(RateRule(prefix or "/", capacity, per_s))
        rules.sort(key=lambda r: len(r.prefix), reverse=True)
        return cls(rules, clock)

    def rule_for(self, path: str) -> RateRule | None:
        for rule in self.rules:  # longest prefix first
            if path.startswith(rule.prefix):
                return rule if rule.capacity > 0 else None
        return None

    def check(self, path: str, client: str) -> float | None:
        rule = self.rule_for(path)
        if rule is None:
            return None
        now = self.clock()
        key = (client, rule.prefix)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(rule.capacity, now)
        else:
            bucket.tokens = min(rule.capacity, bucket.tokens + (now - bucket.at) * rule.per_s)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / rule.per_s if rule.per_s > 0 else 3600.0

    def _evict(self, now: float) -> None:
        """Forget buckets that have refilled (they behave exactly like new ones), else the
        oldest half: memory stays bounded whatever the number of clients."""
        by_prefix = {r.prefix: r for r in self.rules}
        for key, b in list(self._buckets.items()):
            rule = by_prefix.get(key[1])
            if rule is None or b.tokens + (now - b.at) * rule.per_s >= rule.capacity:
                del self._buckets[key]
        if len(self._buckets) >= self.max_clients:
            oldest = sorted(self._buckets.items(), key=lambda kv: kv[1].at)
            for key, _ in oldest[: len(oldest) // 2]:
                del self._buckets[key]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _wants_json(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    accept = (_header(scope, b"accept") or b"").decode("latin-1").lower()
    return path.startswith("/api/") or ("json" in accept and "html" not in accept)


def error_body(
    scope: Scope, status: int, code: str, message: str
) -> tuple[bytes, bytes]:
    """A short error body for a refusal made outside the routes: JSON for APIs and clients
    that ask for it, else a small HTML page (no inline script or style). Returns (body,
    content type)."""
    rid = request_id_of(scope)
    if _wants_json(scope):
        doc = {"error": code, "detail": message, "request_id": rid}
        return orjson.dumps(doc), b"application/json"
    from html import escape

    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{status} · citypulse</title>"
        '<link rel="stylesheet" href="/static/css/site.css"></head>'
        f'<body><main id="main"><h1>{status}</h1><p>{escape(message)}</p>'
        f"<p>Request id: <code>{escape(rid or '-')}</code></p>"
        '<p><a href="/">citypulse</a></p></main></body></html>'
    )
    return page.encode(), b"text/html; charset=utf-8"


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    body, content_type = error_body(scope, status, code, message)
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    hsts_max_age: int = 0
    max_request_bytes: int = 1024 * 1024
    max_upload_bytes: int = 32 * 1024 * 1024
    upload_paths: tuple[str, ...] = ()
    write_rate_limits: Mapping[str, str] = field(default_factory=dict)
    csp: str = CSP

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityConfig:
        return cls(
            hsts_max_age=settings.hsts_max_age,
            max_request_bytes=settings.max_request_bytes,
            max_upload_bytes=settings.max_upload_bytes,
            upload_paths=tuple(settings.upload_paths),
            write_rate_limits=dict(settings.write_rate_limits),
        )


class SecurityMiddleware:
    """Adds the security headers and ``X-Request-ID`` to every HTTP response, refuses bodies
    over the size limit (413) and writes over the client's rate (429 with ``Retry-After``)."""

    def __init__(
        self,
        app: ASGIApp,
        config: SecurityConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.config = config or SecurityConfig()
        self.limiter = RateLimiter.from_mapping(self.config.write_rate_limits, clock)

    def body_limit(self, path: str) -> int:
        if any(path.startswith(p) for p in self.config.upload_paths):
            return self.config.max_upload_bytes
        return self.config.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # shared with outer layers: mutate in place
        incoming = (_header(scope, REQUEST_ID_HEADER.encode()) or b"").decode("latin-1")
        rid = incoming if _INCOMING_ID.match(incoming) else secrets.token_hex(8)
        state["request_id"] = rid
        path = str(scope.get("path", ""))
        extra = [
            *security_headers(path, hsts_max_age=self.config.hsts_max_age, csp=self.config.csp),
            (REQUEST_ID_HEADER.encode(), rid.encode()),
        ]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
                message = dict(message, headers=headers)
            await send(message)

        method = str(scope.get("method", "GET")).upper()
        if method in UNSAFE_METHODS:
            client = scope.get("client")
            who = str(client[0]) if client else "-"
            wait = self.limiter.check(path, who)
            if wait is not None:
                log.warning("rate limit: %s %s from %s (request %s)", method, path, who, rid)
                retry = str(max(1, math.ceil(wait))).encode()
                await send_error(
                    scope,
                    send_with_headers,
                    429,
                    "rate-limited",
                    "Too many requests: slow down and retry later.",
                    [(b"retry-after", retry)],
                )
                return

        limit = self.body_limit(path)
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await send_error(
                    scope, send_with_headers, 400, "bad-request", "Invalid Content-Length."
                )
                return
            if size > limit:
                await self._too_large(scope, send_with_headers, limit)
                return
            guarded = receive
        elif method in UNSAFE_METHODS or _header(scope, b"transfer-encoding") is not None:
            # A chunked body: read it up to the limit first, then replay it to the app (the
            # app could otherwise turn our refusal into its own 400 while parsing).
            chunks: list[bytes] = []
            total = 0
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > limit:
                    await self._too_large(scope, send_with_headers, limit)
                    return
                chunks.append(chunk)
                more = bool(message.get("more_body", False))
            replayed = False
            body = b"".join(chunks)

            async def guarded() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

        else:
            guarded = receive
        await self.app(scope, guarded, send_with_headers)

    async def _too_large(self, scope: Scope, send: Send, limit: int) -> None:
        await send_error(
            scope,
            send,
            413,
            "request-too-large",
            f"The request body is larger than this endpoint accepts ({limit} bytes).",
        )


def install(app: Starlette, settings: Settings) -> None:
    """Add the middleware to the app (call it after every other ``add_middleware`` so it is
    the outermost user middleware and sees every response)."""
    app.add_middleware(SecurityMiddleware, config=SecurityConfig.from_settings(settings))
