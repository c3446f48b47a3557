"""HTTP fetching of feeds: polite, bounded and honest about failures.

Polite: a ``citypulse/<version>`` User-Agent and conditional requests (ETag / Last-Modified), so
an unchanged feed costs the publisher a 304 instead of a full body. Bounded: connect/read
timeouts, an overall deadline per attempt (a server dripping bytes cannot hold a poll forever)
and a size cap enforced while streaming (also on the decompressed bytes). Honest: ``fetch``
never raises; it returns a result whose ``error`` is a short stable string (``timeout``,
``http-503``, ``connect-error: ...``, ``payload-too-large``) that goes straight into feed health.

Transient failures (connect errors, timeouts, 5xx) are retried with exponential backoff and
jitter (tenacity); 4xx are not, since asking again will not change the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from citypulse import __version__
from citypulse.config import Settings
from citypulse.feeds.base import FeedSpec
from citypulse.model import now_utc

log = logging.getLogger(__name__)

USER_AGENT = f"citypulse/{__version__}"

FetchStatus = Literal["ok", "not-modified", "error"]


class FetchFailure(Exception):
    """A failed attempt that asking again will not fix (4xx, too large...)."""

    def __init__(self, error: str, http_status: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.http_status = http_status


class _Retryable(FetchFailure):
    """A transient failure: connect error, timeout, 5xx."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    feed_id: str
    status: FetchStatus
    fetched_at: datetime
    payload: bytes | None = field(default=None, repr=False)
    http_status: int | None = None
    error: str | None = None
    content_type: str | None = None
    attempts: int = 1
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class _Validators:
    etag: str | None
    last_modified: str | None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text[:200] if text else type(exc).__name__


class Fetcher:
    """Fetch feeds over HTTP(S) with one shared ``httpx.AsyncClient``.

    Use as ``async with Fetcher(...) as f`` or call ``aclose()``; a client is created lazily on
    first use if none was given.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 20.0,
        max_bytes: int = 50 * 1024 * 1024,
        attempts: int = 3,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        deadline_s: float | None = None,
        user_agent: str = USER_AGENT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        # Whole-attempt cap: httpx timeouts are per network operation, so a slow drip of
        # bytes would otherwise never time out.
        self.deadline_s = deadline_s if deadline_s is not None else 3 * timeout_s
        self.user_agent = user_agent
        self._client = client
        self._own_client = client is None
        self._validators: dict[str, _Validators] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, attempts: int = 3, client: httpx.AsyncClient | None = None
    ) -> Fetcher:
        return cls(
            timeout_s=settings.http_timeout_s,
            max_bytes=settings.max_payload_bytes,
            attempts=attempts,
            client=client,
        )

    async def __aenter__(self) -> Self:
        self._ensure_client()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=True,
                headers={"User-Agent": self.user_agent},
            )
            self._own_client = True
        return self._client

    def forget(self, feed_id: str) -> None:
        """Drop the remembered ETag/Last-Modified, so the next poll fetches the full body
        (used when a fetched payload could not be stored and must be fetched again)."""
        self._validators.pop(feed_id, None)

    def validators(self, feed_id: str) -> tuple[str | None, str | None]:
        v = self._validators.get(feed_id)
        return (v.etag, v.last_modified) if v else (None, None)

    async def fetch(self, spec: FeedSpec, url: str | None = None) -> FetchResult:
        """Fetch one feed; never raises (except cancellation)."""
        target = url or spec.url
        cap = min(self.max_bytes, spec.max_bytes)
        started = time.monotonic()
        fetched_at = now_utc()
        attempt_no = 0

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info(
                "%s: attempt %d failed (%s), retrying",
                spec.id,
                state.attempt_number,
                exc.error if isinstance(exc, FetchFailure) else exc,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            # exponential + jitter; spelled with long-standing tenacity API (>= 8.5)
            wait=wait_exponential(multiplier=self.backoff_s, max=self.backoff_max_s)
            + wait_random(0, self.backoff_s),
            retry=retry_if_exception_type(_Retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempt_no = attempt.retry_state.attempt_number
                    fetched_at = now_utc()
                    result = await self._attempt(spec.id, target, cap, fetched_at)
        except FetchFailure as exc:
            return FetchResult(
                spec.id,
                "error",
                fetched_at,
                http_status=exc.http_status,
                error=exc.error,
                attempts=attempt_no,
                elapsed_s=time.monotonic() - started,
            )
        return FetchResult(
            result.feed_id,
            result.status,
            result.fetched_at,
            payload=result.payload,
            http_status=result.http_status,
            content_type=result.content_type,
            attempts=attempt_no,
            elapsed_s=time.monotonic() - started,
        )

    async def _attempt(self, feed_id: str, url: str, cap: int, fetched_at: datetime) -> FetchResult:
        client = self._ensure_client()
        headers: dict[str, str] = {}
        known = self._validators.get(feed_id)
        if known is not None:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        try:
            async with asyncio.timeout(self.deadline_s):
                return await self._request(client, feed_id, url, headers, cap, fetched_at)
        except FetchFailure:
            raise
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise FetchFailure(f"invalid-url: {_describe(exc)}") from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _Retryable("timeout") from exc
        except httpx.ConnectError as exc:
            raise _Retryable(f"connect-error: {_describe(exc)}") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(f"network-error: {_describe(exc)}") from exc
        except httpx.TooManyRedirects as exc:
            raise FetchFailure("too-many-redirects") from exc
        except httpx.HTTPError as exc:
            raise FetchFailure(f"http-error: {type(exc).__name__}: {_describe(exc)}") from exc

    async def _request(
        self,
        client: httpx.AsyncClient,
        feed_id: str,
        url: str,
        headers: dict[str, str],
        cap: int,
        fetched_at: datetime,
    ) -> FetchResult:
        async with client.stream("GET", url, headers=headers) as resp:
            code = resp.status_code
            if code == 304:
                return FetchResult(feed_id, "not-modified", fetched_at, http_status=304)
            if code >= 500:
                raise _Retryable(f"http-{code}", http_status=code)
            if code >= 400:
                raise FetchFailure(f"http-{code}", http_status=code)
            if code != 200:
                raise FetchFailure(f"http-{code}", http_status=code)
            declared = resp.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise FetchFailure("payload-too-large", http_status=code)
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():  # decoded: the cap also stops gzip bombs
                size += len(chunk)
                if size > cap:
                    raise FetchFailure("payload-too-large", http_status=code)
                chunks.append(chunk)
            self._remember(feed_id, resp)
            return FetchResult(
                feed_id,
                "ok",
                fetched_at,
                payload=b"".join(chunks),
                http_status=code,
                content_type=resp.headers.get("Content-Type"),
            )

    def _remember(self, feed_id: str, resp: httpx.Response) -> None:
        etag = resp.headers.get("ETag")
        last_modified = resp.headers.get("Last-Modified")
        if etag or last_modified:
            self._validators[feed_id] = _Validators(etag, last_modified)
        else:
            self._validators.pop(feed_id, None)
