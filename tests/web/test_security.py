"""Web hardening: security headers, request ids, generic 500s, body size limits, rate limits
on writes and pagination caps (``web/security.py``, ``web/errors.py``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from citypulse.config import Settings
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.app import create_app
from citypulse.web.security import CSP, RateLimiter, parse_rate

SECRET = "s3cret-detail-/etc/passwd"


def build(tmp_path: Path, **settings: Any) -> tuple[FastAPI, DuckDBStore]:
    store = DuckDBStore(str(tmp_path / "s.duckdb"))
    app = create_app(Settings(data_dir=tmp_path, **settings), store)

    @app.get("/test-boom")
    def boom() -> None:
        raise RuntimeError(SECRET)

    @app.get("/api/v1/test-boom")
    def api_boom() -> None:
        raise KeyError(SECRET)

    @app.post("/api/v1/test-echo")
    async def echo(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    @app.post("/upload/test")
    async def upload(request: Any = None) -> dict[str, int]:
        return {"ok": 1}

    @app.get("/test-own-csp")
    def own_csp() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src 'none'"})

    return app, store


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app, store = build(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    store.close()


# --- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/status", "/api/v1/feeds", "/static/css/site.css", "/no-such-page", "/docs"]
)
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no unsafe-inline / unsafe-eval
    assert "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert directives["base-uri"] == "'self'" and directives["form-action"] == "'self'"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert len(r.headers["x-request-id"]) >= 8
    assert "strict-transport-security" not in r.headers  # opt-in


def test_hsts_is_sent_when_configured(tmp_path: Path) -> None:
    app, store = build(tmp_path, hsts_max_age=31_536_000)
    with TestClient(app) as c:
        r = c.get("/status")
    store.close()
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_a_route_may_set_its_own_policy(client: TestClient) -> None:
    r = client.get("/test-own-csp")
    assert r.headers["content-security-policy"] == "default-src 'none'"
    assert r.headers["x-frame-options"] == "DENY"


def test_request_id_is_echoed_when_sane_and_replaced_when_not(client: TestClient) -> None:
    assert client.get("/status", headers={"X-Request-ID": "proxy-abc-12345"}).headers[
        "x-request-id"
    ] == "proxy-abc-12345"
    bad = client.get("/status", headers={"X-Request-ID": b"x\xe9<script>\"1234"}).headers[
        "x-request-id"
    ]
    assert "<" not in bad and len(bad) == 16
    a = client.get("/status").headers["x-request-id"]
    b = client.get("/status").headers["x-request-id"]
    assert a != b


# --- errors ----------------------------------------------------------------------------------


def test_500_page_has_no_details_but_a_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="citypulse.web.errors"):
        r = client.get("/test-boom", headers={"Accept": "text/html"})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    rid = r.headers["x-request-id"]
    assert rid in r.text
    for leak in (SECRET, "Traceback", "RuntimeError", "test_security.py", 'File "'):
        assert leak not in r.text
    assert r.headers["content-security-policy"] == CSP
    assert "<script" not in r.text and "style=" not in r.text
    # The details are in the log, under the same id.
    record = next(rec for rec in caplog.records if rid in rec.getMessage())
    assert record.exc_info is not None and SECRET in str(record.exc_info[1])


def test_500_json_for_the_api(client: TestClient) -> None:
    r = client.get("/api/v1/test-boom")
    assert r.status_code == 500
    body = r.json()
    assert body == {
        "error": "internal-error",
        "detail": body["detail"],
        "request_id": r.headers["x-request-id"],
    }
    assert SECRET not in r.text and "KeyError" not in r.text


# --- request size --------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_refused(client: TestClient) -> None:
    r = client.post("/api/v1/test-echo", content=b"{" + b" " * (1024 * 1024) + b"}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"] == "request-too-large"


def test_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"a": "'
        for _ in range(40):
            yield b"x" * 32_768
        yield b'"}'

    r = client.post("/api/v1/test-echo", content=chunks(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_small_bodies_pass_also_chunked(client: TestClient) -> None:
    assert client.post("/api/v1/test-echo", json={"a": 1, "b": 2}).json() == {"keys": 2}

    def chunks() -> Iterator[bytes]:
        yield b'{"a": 1,'
        yield b' "b": 2, "c": 3}'

    r = client.post("/api/v1/test-echo", content=chunks(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json() == {"keys": 3}


def test_upload_paths_get_the_larger_limit(tmp_path: Path) -> None:
    app, store = build(tmp_path, upload_paths=["/upload/"], max_upload_bytes=4 * 1024 * 1024)
    with TestClient(app) as c:
        big = b"x" * (2 * 1024 * 1024)
        assert c.post("/upload/test", content=big).status_code == 200
        assert c.post("/api/v1/test-echo", content=big).status_code == 413
        assert c.post("/upload/test", content=big * 3).status_code == 413
    store.close()


# --- rate limits -----------------------------------------------------------------------------


def test_writes_are_rate_limited_per_client_reads_are_not(tmp_path: Path) -> None:
    app, store = build(tmp_path, write_rate_limits={"/": "5/minute", "/upload/": "0/minute"})
    with TestClient(app) as c:
        codes = [c.post("/api/v1/test-echo", json={}).status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        r = c.post("/api/v1/test-echo", json={})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"] == "rate-limited"
        assert all(c.get("/api/v1/feeds").status_code == 200 for _ in range(20))
        # "0/minute": no limit on that prefix.
        assert all(c.post("/upload/test").status_code == 200 for _ in range(10))
    with TestClient(app, client=("10.0.0.2", 5000)) as other:
        assert other.post("/api/v1/test-echo", json={}).status_code == 200
    store.close()


def test_token_bucket_refills_and_longest_prefix_wins() -> None:
    now = [0.0]
    limiter = RateLimiter.from_mapping(
        {"/": "2/second", "/login": "1/minute"}, clock=lambda: now[0]
    )
    assert limiter.check("/x", "a") is None
    assert limiter.check("/x", "a") is None
    wait = limiter.check("/x", "a")
    assert wait is not None and 0 < wait <= 0.5
    now[0] += 0.5
    assert limiter.check("/x", "a") is None
    assert limiter.check("/login", "a") is None
    login_wait = limiter.check("/login", "a")
    assert login_wait is not None and 59 < login_wait <= 60
    assert parse_rate("120/minute") == (120.0, 2.0)
    with pytest.raises(ValueError):
        parse_rate("lots")


def test_limiter_memory_is_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter.from_mapping({"/": "1/hour"}, clock=lambda: now[0])
    limiter.max_clients = 100
    for i in range(1000):
        limiter.check("/", f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) <= 100


# --- pagination caps -----------------------------------------------------------------------

PAGE_PARAMS = {"limit", "rows", "page_size", "per_page", "size", "max", "n"}
# Declared as free text and clamped in code; checked by request below instead.
CLAMPED_IN_CODE = {"GET /api/v1/initiatives ?per_page"}


def test_every_paging_parameter_has_an_upper_bound(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    unbounded = []
    checked = 0
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param.get("in") != "query" or param["name"] not in PAGE_PARAMS:
                    continue
                checked += 1
                s = param.get("schema", {})
                options = [s, *s.get("anyOf", [])]
                name = f"{method.upper()} {path} ?{param['name']}"
                if not any("maximum" in o for o in options) and name not in CLAMPED_IN_CODE:
                    unbounded.append(name)
    assert checked >= 3
    assert not unbounded, f"paging parameters without a maximum: {unbounded}"


def test_clamped_paging_parameters_are_clamped(client: TestClient) -> None:
    r = client.get("/api/v1/initiatives", params={"per_page": 10**9})
    assert r.status_code == 400 or (r.status_code == 200 and r.json()["per_page"] <= 200)


def test_entity_list_refuses_a_huge_page(client: TestClient) -> None:
    assert client.get("/api/v1/entities", params={"limit": 10**9}).status_code == 422
