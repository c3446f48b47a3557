"""Pipeline: stored, duplicate, quarantined (raw payload kept), parser crash contained,
store/archive failures contained, bus summary."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from citypulse.feeds.base import FeedSpec
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline, extension_for
from citypulse.model import Batch, sha256
from citypulse.store.base import TimeSeriesStore
from citypulse.store.bus import InProcessBus

from .helpers import make_spec, parse_test_json, payload

FETCHED = datetime(2024, 1, 1, 4, 1, 0, tzinfo=UTC)


def health(store: TimeSeriesStore, feed_id: str) -> Any:
    return next(h for h in store.feed_health() if h.feed_id == feed_id)


async def test_stored_archived_published_and_healthy(
    pipeline: Pipeline, store: TimeSeriesStore, archive: RawArchive, bus: InProcessBus
) -> None:
    body = payload(a=1.5, b=2.0, c=3.0)
    async with bus.subscribe(frozenset({"test"})) as sub:
        out = pipeline.process(make_spec(), body, FETCHED)
        message = sub.queue.get_nowait()

    assert out.status == "stored" and out.ok and out.reason is None
    assert out.rows == 3 and out.entities == 3
    assert out.sha256 == sha256(body)
    # "2024-01-01T12:00:00" is Hong Kong time
    assert out.data_start == out.data_end == datetime(2024, 1, 1, 4, 0, tzinfo=UTC)

    assert store.count_observations() == 3
    assert {v.entity_id: v.value for v in store.latest("value_x")} == {
        "test:a": 1.5,
        "test:b": 2.0,
        "test:c": 3.0,
    }
    assert store.seen_payload(sha256(body))

    entries = archive.entries("test-json")
    assert len(entries) == 1 and archive.read(entries[0]) == body
    assert out.archive_path == str(entries[0].path)
    assert entries[0].ext == "json"

    assert message.topic == "test"
    assert message.data["feed_id"] == "test-json"
    assert message.data["rows"] == 3 and message.data["entities"] == 3
    assert message.data["start"] == message.data["end"] == "2024-01-01T04:00:00+00:00"

    h = health(store, "test-json")
    assert h.consecutive_failures == 0 and h.last_error is None
    assert h.last_success is not None and h.last_rows == 3


async def test_second_process_of_same_payload_writes_nothing(
    store: TimeSeriesStore, archive: RawArchive, bus: InProcessBus
) -> None:
    calls: list[bytes] = []

    def counting(body: bytes, at: datetime) -> Batch:
        calls.append(body)
        return parse_test_json(body, at)

    pipeline = Pipeline(store, archive, bus)
    spec = make_spec(parse=counting)
    body = payload()
    first = pipeline.process(spec, body, FETCHED)
    n_obs = store.count_observations()
    n_payloads = len(store.payloads(limit=1000))
    published = bus.published

    second = pipeline.process(spec, body, datetime(2024, 1, 1, 4, 3, tzinfo=UTC))

    assert first.status == "stored"
    assert second.status == "duplicate" and second.ok and second.rows == 0
    assert len(calls) == 1  # not parsed again
    assert store.count_observations() == n_obs
    assert len(store.payloads(limit=1000)) == n_payloads
    assert bus.published == published
    assert len(archive.entries("test-json")) == 1
    assert health(store, "test-json").consecutive_failures == 0


def test_same_data_in_new_bytes_adds_no_rows(pipeline: Pipeline, store: TimeSeriesStore) -> None:
    spec = make_spec()
    pipeline.process(spec, payload(a=1.0), FETCHED)
    again = pipeline.process(spec, payload(a=1.0) + b"\n", FETCHED)  # other bytes, same data
    assert again.status == "stored"
    assert store.count_observations() == 1


def test_malformed_payload_quarantined_with_raw_bytes_archived(
    pipeline: Pipeline, store: TimeSeriesStore, archive: RawArchive, bus: InProcessBus
) -> None:
    bad = b'{"time": "2024-01-01T12:00:00", "readings": {"a": 1'
    out = pipeline.process(make_spec(), bad, FETCHED)

    assert out.status == "quarantined" and not out.ok
    assert out.reason == "malformed-json" and out.rows == 0
    assert store.count_observations() == 0
    assert bus.published == 0

    (record,) = store.payloads(status="quarantined")
    assert record.sha256 == sha256(bad)
    assert record.feed_id == "test-json"
    assert record.reason == "malformed-json"
    assert record.archive_path == out.archive_path
    assert record.archive_path is not None
    assert archive.read(Path(record.archive_path)) == bad  # the evidence, byte for byte

    h = health(store, "test-json")
    assert h.consecutive_failures == 1 and h.last_error == "malformed-json"


def test_html_error_page_quarantined(pipeline: Pipeline, store: TimeSeriesStore) -> None:
    out = pipeline.process(make_spec(), b"<html><body>502 Bad Gateway</body></html>", FETCHED)
    assert out.status == "quarantined" and out.reason == "html-error-page"
    assert [p.reason for p in store.payloads(status="quarantined")] == ["html-error-page"]


def test_parser_crash_contained_and_logged(
    pipeline: Pipeline, store: TimeSeriesStore, caplog: pytest.LogCaptureFixture
) -> None:
    def buggy(body: bytes, at: datetime) -> Batch:
        table: dict[str, Batch] = {}
        return table["missing"]  # a KeyError: a parser bug

    with caplog.at_level(logging.ERROR, logger="citypulse.ingest.pipeline"):
        out = pipeline.process(make_spec(parse=buggy), payload(), FETCHED)

    assert out.status == "quarantined" and out.reason == "parser-crash"
    crash_logs = [r for r in caplog.records if r.exc_info]
    assert crash_logs and crash_logs[0].exc_info is not None
    assert crash_logs[0].exc_info[0] is KeyError  # the traceback is kept
    (record,) = store.payloads(status="quarantined")
    assert record.reason == "parser-crash" and record.archive_path

    # The next good payload of the same feed goes through.
    ok = pipeline.process(make_spec(), payload(a=9.0), FETCHED)
    assert ok.status == "stored"
    assert health(store, "test-json").consecutive_failures == 0


def test_store_failure_contained(
    store: TimeSeriesStore, archive: RawArchive, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenAppend:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def append(self, batch: Batch) -> Any:
            raise RuntimeError("database is locked")

    pipeline = Pipeline(BrokenAppend(), archive)
    with caplog.at_level(logging.ERROR):
        out = pipeline.process(make_spec(), payload(), FETCHED)
    assert out.status == "error" and out.reason == "store-error: RuntimeError"
    assert out.archive_path is not None  # the payload is safe in the archive
    assert health(store, "test-json").last_error == "store-error: RuntimeError"


def test_archive_failure_does_not_lose_data(
    store: TimeSeriesStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenArchive(RawArchive):
        def put(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("disk full")

    pipeline = Pipeline(store, BrokenArchive(tmp_path))
    with caplog.at_level(logging.ERROR):
        out = pipeline.process(make_spec(), payload(), FETCHED)
    assert out.status == "stored" and out.archive_path is None
    assert store.count_observations() == 2


async def test_default_topic_and_bus_optional(
    store: TimeSeriesStore, archive: RawArchive, bus: InProcessBus
) -> None:
    spec = make_spec("test-notopic", topics=())
    async with bus.subscribe() as sub:
        Pipeline(store, archive, bus).process(spec, payload(a=1.0), FETCHED)
        assert sub.queue.get_nowait().topic == "feed.test-notopic"
    out = Pipeline(store, archive, None).process(spec, payload(a=2.0), FETCHED)
    assert out.status == "stored"


def test_naive_fetch_time_is_a_caller_bug(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError):
        pipeline.process(make_spec(), payload(), datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("media_type", "ext"),
    [
        ("application/xml", "xml"),
        ("text/xml; charset=utf-8", "xml"),
        ("application/rss+xml", "xml"),
        ("application/json", "json"),
        ("application/vnd.geo+json", "json"),
        ("text/csv", "csv"),
        ("application/octet-stream", "bin"),
    ],
)
def test_extension_for(media_type: str, ext: str) -> None:
    assert extension_for(media_type) == ext


def test_spec_fixture_is_a_feedspec() -> None:
    assert isinstance(make_spec(), FeedSpec)


def test_feed_still_serving_a_refused_payload_stays_down(
    pipeline: Pipeline, store: TimeSeriesStore, archive: RawArchive
) -> None:
    bad = b"<!DOCTYPE html><html>maintenance</html>"
    first = pipeline.process(make_spec(), bad, FETCHED)
    again = pipeline.process(make_spec(), bad, FETCHED)
    # A restarted process (no memory) finds the reason in the store.
    after_restart = Pipeline(store, archive).process(make_spec(), bad, FETCHED)
    assert first.status == again.status == after_restart.status == "quarantined"
    assert first.reason == again.reason == after_restart.reason == "html-error-page"
    assert len(store.payloads(status="quarantined")) == 1  # recorded once
    assert health(store, "test-json").consecutive_failures == 3
    assert len(archive.entries("test-json")) == 1
