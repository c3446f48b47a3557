"""Fetcher against a real HTTP server on 127.0.0.1: conditional requests, retries, timeouts,
size cap, error strings."""

from __future__ import annotations

import gzip

import pytest

from citypulse import __version__
from citypulse.ingest.fetch import Fetcher

from .helpers import LocalServer, Reply, make_spec, payload


def fast_fetcher(**kwargs: object) -> Fetcher:
    opts: dict[str, object] = {"timeout_s": 5.0, "attempts": 3, "backoff_s": 0.01}
    opts.update(kwargs)
    return Fetcher(**opts)  # type: ignore[arg-type]


async def test_ok_sends_user_agent(http_server: LocalServer) -> None:
    body = payload()
    http_server.routes["/feed"] = lambda h: Reply(200, body, {"Content-Type": "application/json"})
    async with fast_fetcher() as fetcher:
        res = await fetcher.fetch(make_spec(url=http_server.url("/feed")))
    assert res.ok and res.status == "ok"
    assert res.payload == body
    assert res.http_status == 200
    assert res.content_type == "application/json"
    assert res.attempts == 1 and res.error is None
    assert res.fetched_at.tzinfo is not None
    _, headers = http_server.requests[0]
    assert headers["user-agent"] == f"citypulse/{__version__}"


async def test_etag_then_304_is_unchanged_not_error(http_server: LocalServer) -> None:
    body = payload()

    def route(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(200, body, {"ETag": '"v1"'})

    http_server.routes["/feed"] = route
    spec = make_spec(url=http_server.url("/feed"))
    async with fast_fetcher() as fetcher:
        first = await fetcher.fetch(spec)
        second = await fetcher.fetch(spec)
        assert fetcher.validators(spec.id) == ('"v1"', None)
        fetcher.forget(spec.id)
        third = await fetcher.fetch(spec)
    assert first.status == "ok" and first.payload == body
    assert second.status == "not-modified" and second.payload is None
    assert second.error is None and second.http_status == 304
    assert third.status == "ok"  # forgotten validators: full body again
    sent = [h.get("if-none-match") for _, h in http_server.requests]
    assert sent == [None, '"v1"', None]


async def test_last_modified_sent_back(http_server: LocalServer) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"

    def route(headers: dict[str, str]) -> Reply:
        if headers.get("if-modified-since") == stamp:
            return Reply(304)
        return Reply(200, payload(), {"Last-Modified": stamp})

    http_server.routes["/feed"] = route
    spec = make_spec(url=http_server.url("/feed"))
    async with fast_fetcher() as fetcher:
        assert (await fetcher.fetch(spec)).status == "ok"
        assert (await fetcher.fetch(spec)).status == "not-modified"


async def test_5xx_retried_until_success(http_server: LocalServer) -> None:
    body = payload()

    def route(headers: dict[str, str]) -> Reply:
        if http_server.hits["/flaky"] <= 2:
            return Reply(500, b"oops")
        return Reply(200, body)

    http_server.routes["/flaky"] = route
    async with fast_fetcher(attempts=3) as fetcher:
        res = await fetcher.fetch(make_spec(url=http_server.url("/flaky")))
    assert res.status == "ok" and res.payload == body
    assert res.attempts == 3
    assert http_server.hits["/flaky"] == 3


async def test_5xx_gives_up_with_stable_error(http_server: LocalServer) -> None:
    http_server.routes["/down"] = lambda h: Reply(503, b"maintenance")
    async with fast_fetcher(attempts=2) as fetcher:
        res = await fetcher.fetch(make_spec(url=http_server.url("/down")))
    assert res.status == "error" and not res.ok
    assert res.error == "http-503" and res.http_status == 503
    assert res.attempts == 2 and http_server.hits["/down"] == 2


async def test_4xx_not_retried(http_server: LocalServer) -> None:
    async with fast_fetcher(attempts=3) as fetcher:
        res = await fetcher.fetch(make_spec(url=http_server.url("/missing")))
    assert res.error == "http-404"
    assert http_server.hits["/missing"] == 1


async def test_slow_response_times_out_and_is_retried(http_server: LocalServer) -> None:
    http_server.routes["/slow"] = lambda h: Reply(200, payload(), delay_s=30)
    async with fast_fetcher(timeout_s=0.3, attempts=2) as fetcher:
        res = await fetcher.fetch(make_spec(url=http_server.url("/slow")))
    assert res.status == "error" and res.error == "timeout"
    assert res.attempts == 2 and http_server.hits["/slow"] == 2


async def test_connect_error(closed_port: int) -> None:
    async with fast_fetcher(attempts=2) as fetcher:
        res = await fetcher.fetch(make_spec(url=f"http://127.0.0.1:{closed_port}/feed"))
    assert res.status == "error"
    assert res.error is not None and res.error.startswith("connect-error: ")
    assert res.attempts == 2


@pytest.mark.parametrize("declared", [True, False])
async def test_oversized_body_aborted(http_server: LocalServer, declared: bool) -> None:
    big = b"x" * 100_000
    http_server.routes["/big"] = lambda h: Reply(200, big, content_length=declared)
    async with fast_fetcher(max_bytes=10_000) as fetcher:
        res = await fetcher.fetch(make_spec(url=http_server.url("/big")))
    assert res.status == "error" and res.error == "payload-too-large"
    assert res.payload is None
    assert http_server.hits["/big"] == 1  # not retried


async def test_size_cap_applies_to_decompressed_bytes(http_server: LocalServer) -> None:
    bomb = gzip.compress(b"0" * 1_000_000)  # ~1 KB on the wire, 1 MB decoded
    assert len(bomb) < 10_000
    http_server.routes["/gz"] = lambda h: Reply(200, bomb, {"Content-Encoding": "gzip"})
    async with fast_fetcher(max_bytes=10_000) as fetcher:
        res = await fetcher.fetch(make_spec(url=http_server.url("/gz")))
    assert res.error == "payload-too-large"


async def test_html_error_page_with_200_is_fetched_then_quarantined_by_parser(
    http_server: LocalServer,
) -> None:
    """A 200 with an HTML page is the publisher's maintenance page: the fetch succeeds (the
    bytes are kept as evidence) and the feed's parser refuses it as ``html-error-page``."""
    from citypulse.feeds.base import FeedError

    page = b"<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>"
    http_server.routes["/feed"] = lambda h: Reply(200, page, {"Content-Type": "text/html"})
    spec = make_spec(url=http_server.url("/feed"))
    async with fast_fetcher() as fetcher:
        res = await fetcher.fetch(spec)
    assert res.status == "ok" and res.payload == page
    assert res.content_type == "text/html"
    with pytest.raises(FeedError) as err:
        spec.parse(page, res.fetched_at)
    assert err.value.reason == "html-error-page"


async def test_spec_cap_lower_than_fetcher_cap(http_server: LocalServer) -> None:
    import dataclasses

    http_server.routes["/feed"] = lambda h: Reply(200, b"y" * 5_000)
    spec = dataclasses.replace(make_spec(url=http_server.url("/feed")), max_bytes=1_000)
    async with fast_fetcher() as fetcher:
        res = await fetcher.fetch(spec)
    assert res.error == "payload-too-large"


async def test_from_settings() -> None:
    from citypulse.config import Settings

    settings = Settings(http_timeout_s=7.0, max_payload_bytes=123)
    fetcher = Fetcher.from_settings(settings)
    assert fetcher.timeout_s == 7.0 and fetcher.max_bytes == 123
    await fetcher.aclose()


@pytest.mark.parametrize("url", ["", "ftp://example.org/feed.xml"])
async def test_unusable_url_is_a_clear_error(url: str) -> None:
    async with fast_fetcher() as fetcher:
        res = await fetcher.fetch(make_spec(url=url))
    assert res.status == "error" and res.attempts == 1
    assert res.error is not None and res.error.startswith("invalid-url: ")
