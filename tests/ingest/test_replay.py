"""Replay: file -> feed mapping, data-time ordering, fetched_at from file names, idempotency,
archive round trip, and the real captured payloads through the registry."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citypulse.feeds.base import FeedSpec
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.ingest.replay import replay, time_from_name
from citypulse.model import Batch
from citypulse.store.base import TimeSeriesStore

from .helpers import make_spec, parse_test_json, payload


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("speedmap_20161014-185252.xml", datetime(2016, 10, 14, 10, 52, 52, tzinfo=UTC)),
        ("CurrentWeather_20230821-0002HKT.xml", datetime(2023, 8, 20, 16, 2, tzinfo=UTC)),
        ("rhrread_tc_20251021_012903Z.json", datetime(2025, 10, 21, 1, 29, 3, tzinfo=UTC)),
        ("rawSpeedVol-all_20240406-2127.xml", datetime(2024, 4, 6, 13, 27, tzinfo=UTC)),
        ("cases_eng_2022-05-04.csv", datetime(2022, 5, 3, 16, 0, tzinfo=UTC)),
        ("info_2022-03.csv", None),
        ("speedmap.xml", None),
        ("x_20161399-999999.xml", None),
    ],
)
def test_time_from_name(name: str, expected: datetime | None) -> None:
    assert time_from_name(name) == expected


class Recorder:
    """A test feed whose parser records the order and fetch times it sees."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, datetime]] = []
        self.spec = make_spec("test-json", parse=self.parse, file_patterns=("*.json",))

    def parse(self, body: bytes, fetched_at: datetime) -> Batch:
        self.seen.append((body, fetched_at))
        return parse_test_json(body, fetched_at)


def make_tree(root: Path) -> dict[str, bytes]:
    feed = root / "captures" / "test-json"
    feed.mkdir(parents=True)
    files = {
        # name order differs from time order on purpose
        "a_20240101-110000.json": payload("2024-01-01T11:00:00", a=3.0),
        "b_20240101-100000.json": payload("2024-01-01T10:00:00", a=2.0),
        "c_20240101_013000Z.json": payload("2024-01-01T09:30:00", a=1.5),  # 09:30 HKT
        "nostamp.json": payload("2024-01-01T09:00:00", a=1.0),
        "d_20240101-120000.json": b'{"time": "broken',
        "e_20240101-130000.json": payload("2024-01-01T11:00:00", a=3.0),  # same bytes as a_
    }
    for name, body in files.items():
        (feed / name).write_bytes(body)
    # No time in the name: modification time decides (08:55 HKT, first of all).
    mtime = datetime(2024, 1, 1, 0, 55, tzinfo=UTC).timestamp()
    os.utime(feed / "nostamp.json", (mtime, mtime))
    (feed / "schema.xsd").write_text("<xs:schema/>")  # a reference file, not a payload
    (root / "captures" / "README.md").write_text("notes")
    (root / "captures" / "other").mkdir()
    (root / "captures" / "other" / "mystery.bin").write_bytes(b"\x00")
    (feed / ".hidden.json").write_bytes(payload())
    return files


def test_replay_orders_by_data_time_and_reports(
    tmp_path: Path, pipeline: Pipeline, store: TimeSeriesStore
) -> None:
    files = make_tree(tmp_path)
    rec = Recorder()
    report = replay(tmp_path / "captures", pipeline, feeds={"test-json": rec.spec})

    order = [body for body, _ in rec.seen]
    assert order == [
        files["nostamp.json"],
        files["c_20240101_013000Z.json"],
        files["b_20240101-100000.json"],
        files["a_20240101-110000.json"],
        files["d_20240101-120000.json"],
        # e_ has a_'s bytes: a duplicate, never parsed
    ]
    fetched = [at for _, at in rec.seen]
    assert fetched[0] == datetime(2024, 1, 1, 0, 55, tzinfo=UTC)  # mtime
    assert fetched[1] == datetime(2024, 1, 1, 1, 30, tzinfo=UTC)  # Z = UTC
    assert fetched[2] == datetime(2024, 1, 1, 2, 0, tzinfo=UTC)  # no suffix = HKT

    counts = report.feeds["test-json"]
    assert (counts.stored, counts.duplicate, counts.quarantined) == (4, 1, 1)
    assert counts.reasons == {"malformed-json": 1}
    assert counts.rows == 4
    assert sorted(p.name for p in report.unknown) == ["README.md", "mystery.bin", "schema.xsd"]
    assert report.files == 9  # hidden files are not counted
    # The newest payload in time wins "latest", whatever the file name order.
    assert [v.value for v in store.latest("value_x")] == [3.0]
    assert str(report).splitlines() == [
        "9 files, 3 not recognised as a feed payload",
        "  test-json: stored 4 (4 rows), duplicate 1, quarantined 1 [malformed-json x1]",
    ]
    assert report.as_dict()["feeds"] == {
        "test-json": {
            "stored": 4,
            "duplicate": 1,
            "quarantined": 1,
            "error": 0,
            "rows": 4,
            "reasons": {"malformed-json": 1},
        }
    }


def test_replay_twice_is_idempotent(
    tmp_path: Path, pipeline: Pipeline, store: TimeSeriesStore, archive: RawArchive
) -> None:
    make_tree(tmp_path)
    feeds = {"test-json": Recorder().spec}
    replay(tmp_path / "captures", pipeline, feeds=feeds)
    before = (
        store.count_observations(),
        len(store.payloads(limit=1000)),
        len(store.entities()),
        len(archive.entries()),
    )
    again = replay(tmp_path / "captures", pipeline, feeds=feeds)
    after = (
        store.count_observations(),
        len(store.payloads(limit=1000)),
        len(store.entities()),
        len(archive.entries()),
    )
    assert after == before
    counts = again.feeds["test-json"]
    assert counts.stored == 0 and counts.rows == 0
    assert counts.duplicate == 5  # a_ b_ c_ e_ nostamp
    assert counts.quarantined == 1  # the broken file is still refused, not "fine"


def test_replay_of_the_archive_rebuilds_a_store(
    tmp_path: Path, pipeline: Pipeline, archive: RawArchive
) -> None:
    """The raw archive is a replayable capture: a fresh store rebuilt from it gets the same
    rows, with fetch times taken from the archive layout."""
    from citypulse.store.duckdb import DuckDBStore

    make_tree(tmp_path)
    feeds: dict[str, FeedSpec] = {"test-json": make_spec()}
    replay(tmp_path / "captures", pipeline, feeds=feeds)
    original = pipeline.store.count_observations()

    fresh = DuckDBStore(str(tmp_path / "fresh.duckdb"))
    try:
        rebuilt = Pipeline(fresh, RawArchive(tmp_path / "archive2"))
        report = replay(archive.root, rebuilt, feeds=feeds)
        assert fresh.count_observations() == original
        counts = report.feeds["test-json"]
        assert counts.stored == 4 and counts.quarantined == 1 and not report.unknown
        times = sorted(p.fetched_at for p in fresh.payloads(limit=100))
        assert times == sorted(e.fetched_at for e in archive.entries())
    finally:
        fresh.close()


def test_replay_real_captures_through_the_registry(
    feeds_dir: Path, tmp_path: Path, store: TimeSeriesStore
) -> None:
    """Every captured payload maps to a registered feed and is stored (or refused with a
    reason); reference tables and notes are reported as unknown; a second run adds nothing."""
    from citypulse.feeds.registry import all_feeds

    pipeline = Pipeline(store, RawArchive(tmp_path / "archive"))
    first = replay(feeds_dir, pipeline)
    n = store.count_observations()

    payload_files = [
        p
        for p in feeds_dir.rglob("*")
        if p.is_file() and p.suffix in (".xml", ".json") and p.name != "speedmap.xsd"
    ]
    handled = sum(c.stored + c.duplicate + c.quarantined + c.error for c in first.feeds.values())
    unknown_names = {p.name for p in first.unknown}
    assert {"README.md", "FORMATS.md", "PROVENANCE.md"} <= unknown_names
    assert handled + len(first.unknown) == first.files
    assert set(first.feeds) <= set(all_feeds())
    assert first.stored > 0 and n > 0
    # Every .xml/.json capture is claimed by some feed.
    assert not [p for p in payload_files if p.name in unknown_names]

    second = replay(feeds_dir, pipeline)
    assert second.stored == 0 and second.rows == 0
    assert store.count_observations() == n
