"""Webhook delivery to a real HTTP server on 127.0.0.1: signed with HMAC-SHA256, retried on
5xx, final on 4xx, filtered by severity/rule, and a webhook that is down or hangs never blocks
evaluation or the other webhooks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from citypulse.alerts.engine import AlertEngine
from citypulse.alerts.rules import RuleSet, Webhook
from citypulse.alerts.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDispatcher,
    sign,
    verify,
)
from citypulse.store.duckdb import DuckDBStore

from .support import Clock, WebhookReceiver, obs_batch, station, wait_until

SECRET = "s3cret-for-tests"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


def hook(url: str, **kw: Any) -> Webhook:
    return Webhook(id=kw.pop("id", "ops"), url=url, secret=SECRET, **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def make_engine(store: DuckDBStore, rules: RuleSet, dispatcher: WebhookDispatcher) -> AlertEngine:
    return AlertEngine(store, None, rules, dispatcher=dispatcher, clock=Clock(NOW))


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    sig = sign(SECRET, 1_700_000_000, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify(SECRET, "1700000000", body, sig, now=1_700_000_100)
    assert not verify(SECRET, "1700000000", body + b" ", sig, now=1_700_000_100)
    assert not verify("other", "1700000000", body, sig, now=1_700_000_100)
    assert not verify(SECRET, "1700000001", body, sig, now=1_700_000_100)
    assert not verify(SECRET, "1700000000", body, sig, now=1_700_001_000)  # replayed late
    assert not verify(SECRET, None, body, sig) and not verify(SECRET, "x", body, sig)


def test_delivery_is_signed(store: DuckDBStore, rules: RuleSet,
                            receiver: WebhookReceiver) -> None:
    dispatcher = WebhookDispatcher([hook(receiver.url)])
    dispatcher.start()
    try:
        engine = make_engine(store, rules, dispatcher)
        st = station()
        t = NOW.replace(minute=0, second=0)
        engine.process_batch(obs_batch([(st.id, "aqhi", t, 8)], entities=[st]))
        engine.process_batch(obs_batch([(st.id, "aqhi", t.replace(minute=30), 4)]))
        got = receiver.wait_for(2)
        assert wait_until(lambda: [d["status"] for d in dispatcher.deliveries()] == [
            "delivered", "delivered"])
    finally:
        dispatcher.stop()
    assert [r.headers[EVENT_HEADER.lower()] for r in got] == ["alert.fired", "alert.cleared"]
    for r in got:
        assert r.headers["content-type"] == "application/json"
        assert verify(SECRET, r.headers[TIMESTAMP_HEADER.lower()], r.body,
                      r.headers[SIGNATURE_HEADER.lower()])
        assert r.json()["id"] == r.headers[DELIVERY_HEADER.lower()]
    fired, cleared = (r.json() for r in got)
    assert fired["type"] == "alert.fired" and fired["alert"]["properties"]["rule_id"] == "aqhi-high"
    assert fired["alert"]["ends_at"] is None and cleared["alert"]["ends_at"] is not None
    assert fired["alert"]["id"] == cleared["alert"]["id"]


def test_retries_on_5xx_then_delivers(receiver: WebhookReceiver) -> None:
    receiver.statuses = [503, 500]
    dispatcher = WebhookDispatcher([hook(receiver.url)], backoff_s=0.01)
    dispatcher.start()
    try:
        dispatcher.submit("alert.fired", {"id": "a1", "severity": "high",
                                          "properties": {"rule_id": "r"}})
        got = receiver.wait_for(3)
        assert wait_until(lambda: dispatcher.deliveries()[0]["status"] == "delivered")
    finally:
        dispatcher.stop()
    (record,) = dispatcher.deliveries()
    assert record["attempts"] == 3 and record["http_status"] == 200
    assert len({r.headers[DELIVERY_HEADER.lower()] for r in got}) == 1  # same id on retries
    assert len({r.body for r in got}) == 1


def test_4xx_is_final(receiver: WebhookReceiver) -> None:
    receiver.statuses = [401]
    dispatcher = WebhookDispatcher([hook(receiver.url)], backoff_s=0.01)
    dispatcher.start()
    try:
        dispatcher.submit("alert.fired", {"id": "a1", "severity": "high",
                                          "properties": {"rule_id": "r"}})
        assert wait_until(lambda: dispatcher.deliveries()[0]["status"] == "failed")
    finally:
        dispatcher.stop()
    (record,) = dispatcher.deliveries()
    assert record["attempts"] == 1 and record["error"] == "HTTP 401"
    assert len(receiver.received) == 1


def test_severity_and_rule_filters(receiver: WebhookReceiver) -> None:
    hooks = [hook(receiver.url, id="severe-only", min_severity="severe"),
             hook(receiver.url, id="flood-only", rules=("flood-level",)),
             hook(receiver.url, id="fired-only", events=("alert.fired",))]
    dispatcher = WebhookDispatcher(hooks)
    alert = {"id": "a", "severity": "high", "properties": {"rule_id": "aqhi-high"}}
    assert dispatcher.submit("alert.fired", alert) == 1
    assert dispatcher.submit("alert.cleared", alert) == 0
    flood = {"id": "b", "severity": "high", "properties": {"rule_id": "flood-level"}}
    assert dispatcher.submit("alert.cleared", flood) == 1
    assert dispatcher.submit("alert.fired", {**flood, "severity": "severe"}) == 3


def test_down_webhook_does_not_block(store: DuckDBStore, rules: RuleSet,
                                     receiver: WebhookReceiver) -> None:
    hanging = WebhookReceiver(hold=threading.Event())
    refused = f"http://127.0.0.1:{closed_port()}/hook"
    dispatcher = WebhookDispatcher(
        [hook(hanging.url, id="hangs", timeout_s=30), hook(refused, id="down", max_attempts=3),
         hook(receiver.url, id="up")],
        backoff_s=0.05,
    )
    dispatcher.start()
    try:
        engine = make_engine(store, rules, dispatcher)
        st = station()
        t = NOW.replace(minute=0, second=0)
        # Evaluation returns while one webhook hangs and another refuses connections.
        for i, value in enumerate((8, 3, 9, 2)):
            changes = engine.process_batch(
                obs_batch([(st.id, "aqhi", t.replace(minute=10 * i), value)], entities=[st]))
            assert len(changes) == 1
        assert engine.stats()["fired"] == 2 and engine.stats()["cleared"] == 2
        # The healthy webhook got everything while the hanging one is still stuck on #1.
        assert len(receiver.wait_for(4)) == 4
        assert wait_until(lambda: len([d for d in dispatcher.deliveries()
                                       if d["webhook_id"] == "down"
                                       and d["status"] == "failed"]) == 4)
        hung = [d for d in dispatcher.deliveries() if d["webhook_id"] == "hangs"]
        assert all(d["status"] == "queued" for d in hung) and len(hung) == 4
        down = [d for d in dispatcher.deliveries() if d["webhook_id"] == "down"]
        assert all(d["attempts"] == 3 and "ConnectError" in d["error"] for d in down)
        hanging.hold.set()  # type: ignore[union-attr]
        assert len(hanging.wait_for(4)) == 4
    finally:
        dispatcher.stop()
        hanging.close()


def test_full_queue_drops_the_oldest() -> None:
    hanging = WebhookReceiver(hold=threading.Event())
    dispatcher = WebhookDispatcher([hook(hanging.url, timeout_s=30)], queue_size=2)
    dispatcher.start()
    try:
        def submit(i: int) -> None:
            dispatcher.submit("alert.fired", {"id": f"a{i}", "severity": "high",
                                              "properties": {"rule_id": "r"}})

        submit(0)
        assert hanging.wait_started(1)  # a0 is in flight, held by the server
        for i in range(1, 5):
            submit(i)
        # Two fit in the queue: the two oldest waiting ones were dropped.
        assert wait_until(lambda: dispatcher.dropped == 2)
        hanging.hold.set()  # type: ignore[union-attr]
        assert {r.json()["alert"]["id"] for r in hanging.wait_for(3)} == {"a0", "a3", "a4"}
    finally:
        dispatcher.stop()
        hanging.close()
    assert sorted(d["alert_id"] for d in dispatcher.deliveries()
                  if d["status"] == "dropped") == ["a1", "a2"]


def test_recorded_history_is_not_sent(store: DuckDBStore, rules: RuleSet,
                                      receiver: WebhookReceiver) -> None:
    dispatcher = WebhookDispatcher([hook(receiver.url)])
    engine = make_engine(store, rules, dispatcher)
    st = station()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    changes = engine.process_batch(obs_batch([(st.id, "aqhi", old, 9)], entities=[st]))
    assert [c.action for c in changes] == ["recorded"] and dispatcher.submitted == 0


def test_missing_secret_fails_at_start() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookDispatcher([Webhook(id="x", url="http://127.0.0.1:1/")])


def test_submit_before_start_is_kept(receiver: WebhookReceiver) -> None:
    dispatcher = WebhookDispatcher([hook(receiver.url)])
    dispatcher.submit("alert.fired", {"id": "early", "severity": "low",
                                      "properties": {"rule_id": "r"}})
    dispatcher.start()
    try:
        assert receiver.wait_for(1)[0].json()["alert"]["id"] == "early"
    finally:
        dispatcher.stop()
    assert not dispatcher.running
