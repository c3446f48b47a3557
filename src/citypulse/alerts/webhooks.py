"""Webhook notifications of alert changes: queued, retried, signed with HMAC-SHA256.

Request (one per alert change and webhook)::

    POST <url>
    Content-Type: application/json
    User-Agent: citypulse-webhooks/1
    X-Citypulse-Event: alert.fired | alert.cleared
    X-Citypulse-Delivery: <uuid>          # same on every retry: receivers de-duplicate on it
    X-Citypulse-Timestamp: <unix seconds> # time of this attempt
    X-Citypulse-Signature: sha256=<hex>   # HMAC-SHA256(secret, "<timestamp>." + raw body)

    {"id": "<delivery uuid>", "type": "alert.fired", "alert": {id, rule_id, kind: "alert",
     severity, starts_at, ends_at, title_en, title_zh, body_en, body_zh, entity_ids, districts,
     properties: {rule_id, value, threshold, ...}}}

Receivers recompute the HMAC over the timestamp, a dot and the exact body bytes, compare in
constant time, and refuse timestamps older than a few minutes (replays): :func:`verify`.

Delivery: each webhook has its own bounded queue and worker on a background event loop, so
evaluation only enqueues (never waits on the network) and a webhook that is down delays nobody
but itself. Retries (tenacity) on connection errors, timeouts, HTTP 408/429/5xx with
exponential back-off; other 3xx/4xx answers are final. When a queue is full the oldest
delivery is dropped and logged. Every delivery's outcome is kept in an in-memory log (and
appended to a JSON-lines file when ``log_path`` is given).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from citypulse import __version__
from citypulse.alerts.rules import Webhook
from citypulse.model import now_utc

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Citypulse-Signature"
TIMESTAMP_HEADER = "X-Citypulse-Timestamp"
EVENT_HEADER = "X-Citypulse-Event"
DELIVERY_HEADER = "X-Citypulse-Delivery"
USER_AGENT = f"citypulse-webhooks/{__version__}"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """Receiver side: is this delivery genuine and recent?"""
    if not timestamp or not signature:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


class _Retryable(Exception):
    pass


class _Final(Exception):
    pass


@dataclass(slots=True)
class DeliveryRecord:
    id: str
    webhook_id: str
    event: str
    alert_id: str
    queued_at: datetime
    status: str = "queued"  # queued | delivered | failed | dropped
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    finished_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["queued_at"] = self.queued_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return out


@dataclass(frozen=True, slots=True)
class _Delivery:
    record: DeliveryRecord
    body: bytes


class WebhookDispatcher:
    """Background delivery of alert changes to webhooks. ``submit`` is thread-safe and never
    blocks; ``start``/``stop`` run a private event loop in a daemon thread, so the dispatcher
    works the same under ``citypulse serve``, in tests and in the benchmark."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        *,
        queue_size: int = 1000,
        log_size: int = 500,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        log_path: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.webhooks = list(webhooks)
        for hook in self.webhooks:
            hook.resolved_secret()  # fail at start-up, not at the first alert
        self.queue_size = queue_size
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.log_path = log_path
        self._transport = transport
        self._log: deque[DeliveryRecord] = deque(maxlen=log_size)
        self._log_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queues: dict[str, asyncio.Queue[_Delivery]] = {}
        self._early: deque[tuple[Webhook, _Delivery]] = deque(maxlen=queue_size)
        self.submitted = 0
        self.dropped = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running or not self.webhooks:
            return
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="alert-webhooks", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        while self._early:
            hook, delivery = self._early.popleft()
            self._enqueue_threadsafe(hook, delivery)

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._loop = None

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        client = httpx.AsyncClient(
            transport=self._transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )
        tasks = []
        for hook in self.webhooks:
            q: asyncio.Queue[_Delivery] = asyncio.Queue(self.queue_size)
            self._queues[hook.id] = q
            tasks.append(loop.create_task(self._worker(client, hook, q)))
        ready.set()
        try:
            loop.run_forever()
        finally:
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(client.aclose())
            loop.close()
            self._queues.clear()

    # -- submit (any thread) -----------------------------------------------------------------

    def submit(self, event: str, alert: dict[str, Any]) -> int:
        """Queue ``alert`` (the alert as JSON) for every webhook that wants it; returns how many
        deliveries were queued."""
        props = alert.get("properties") or {}
        rule_id = str(props.get("rule_id", ""))
        severity = str(alert.get("severity", "info"))
        n = 0
        for hook in self.webhooks:
            if not hook.wants(rule_id, severity, event):
                continue
            delivery_id = str(uuid.uuid4())
            body = orjson.dumps({"id": delivery_id, "type": event, "alert": alert})
            record = DeliveryRecord(delivery_id, hook.id, event, str(alert.get("id")), now_utc())
            with self._log_lock:
                self._log.append(record)
            delivery = _Delivery(record, body)
            self.submitted += 1
            n += 1
            if self.running:
                self._enqueue_threadsafe(hook, delivery)
            else:
                if len(self._early) == self._early.maxlen:
                    self._drop(self._early[0][1].record, "queue full before start")
                self._early.append((hook, delivery))
        return n

    def _enqueue_threadsafe(self, hook: Webhook, delivery: _Delivery) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._drop(delivery.record, "dispatcher stopped")
            return
        loop.call_soon_threadsafe(self._enqueue, hook, delivery)

    def _enqueue(self, hook: Webhook, delivery: _Delivery) -> None:
        q = self._queues.get(hook.id)
        if q is None:
            self._drop(delivery.record, "dispatcher stopped")
            return
        if q.full():
            oldest = q.get_nowait()
            self._drop(oldest.record, "queue full")
        q.put_nowait(delivery)

    def _drop(self, record: DeliveryRecord, why: str) -> None:
        self.dropped += 1
        record.status = "dropped"
        record.error = why
        record.finished_at = now_utc()
        self._write_log(record)
        log.warning("webhook delivery %s to %s dropped: %s", record.id, record.webhook_id, why)

    # -- delivery (background loop) ----------------------------------------------------------

    async def _worker(
        self, client: httpx.AsyncClient, hook: Webhook, q: asyncio.Queue[_Delivery]
    ) -> None:
        secret = hook.resolved_secret()
        while True:
            delivery = await q.get()
            try:
                await self._deliver(client, hook, secret, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop this webhook's worker
                log.exception("webhook worker %s failed on %s", hook.id, delivery.record.id)

    async def _deliver(
        self, client: httpx.AsyncClient, hook: Webhook, secret: str, delivery: _Delivery
    ) -> None:
        record = delivery.record
        retrying = AsyncRetrying(
            stop=stop_after_attempt(hook.max_attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    record.attempts += 1
                    await self._attempt(client, hook, secret, delivery)
            record.status = "delivered"
            record.error = None
        except (_Retryable, _Final, httpx.HTTPError) as exc:
            record.status = "failed"
            plain = isinstance(exc, (_Retryable, _Final))
            record.error = (str(exc) if plain else f"{type(exc).__name__}: {exc}")[:300]
            log.warning(
                "webhook %s: delivery %s failed after %d attempt(s): %s",
                hook.id, record.id, record.attempts, record.error,
            )
        record.finished_at = now_utc()
        self._write_log(record)

    async def _attempt(
        self, client: httpx.AsyncClient, hook: Webhook, secret: str, delivery: _Delivery
    ) -> None:
        ts = int(time.time())
        headers = {
            EVENT_HEADER: delivery.record.event,
            DELIVERY_HEADER: delivery.record.id,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(secret, ts, delivery.body),
        }
        response = await client.post(
            hook.url, content=delivery.body, headers=headers, timeout=hook.timeout_s
        )
        delivery.record.http_status = response.status_code
        if response.status_code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {response.status_code}")
        if not 200 <= response.status_code < 300:
            raise _Final(f"HTTP {response.status_code}")

    # -- log ---------------------------------------------------------------------------------

    def _write_log(self, record: DeliveryRecord) -> None:
        if self.log_path is None:
            return
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as fh:
                fh.write(orjson.dumps(record.as_json()) + b"\n")
        except OSError:
            log.exception("could not write the webhook delivery log %s", self.log_path)

    def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        """Most recent first."""
        with self._log_lock:
            records = list(self._log)[-limit:]
        return [r.as_json() for r in reversed(records)]

    def stats(self) -> dict[str, Any]:
        with self._log_lock:
            records = list(self._log)
        by_status: dict[str, int] = {}
        for r in records:
            by_status[r.status] = by_status.get(r.status, 0) + 1
        return {
            "webhooks": [h.id for h in self.webhooks],
            "running": self.running,
            "submitted": self.submitted,
            "dropped": self.dropped,
            "recent_by_status": by_status,
            "queued": {k: q.qsize() for k, q in self._queues.items()},
        }
