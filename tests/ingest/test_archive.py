"""RawArchive: round trip, layout, content-addressed dedupe, atomic writes, listing."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from citypulse.ingest.archive import ArchiveError, RawArchive, parse_archive_path

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_round_trip_and_layout(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path)
    payload = b"<xml>" + b"speed " * 1000 + b"</xml>"
    item = archive.put("td-speedmap", payload, T0, "xml")
    sha = hashlib.sha256(payload).hexdigest()
    assert item.created
    assert item.path == tmp_path / "td-speedmap" / "2024-01-02" / f"030405-{sha[:16]}.xml.zst"
    assert item.path.stat().st_size < len(payload)  # compressed
    # A real zstd frame, readable by any zstd tool, not only by us.
    assert zstandard.ZstdDecompressor().decompress(item.path.read_bytes()) == payload
    assert archive.read(item) == payload
    assert archive.read(item.path) == payload
    assert parse_archive_path(item.path) == ("td-speedmap", T0, sha[:16], "xml")


def test_dates_are_utc(tmp_path: Path) -> None:
    from citypulse.feeds.base import HKT

    archive = RawArchive(tmp_path)
    item = archive.put("f", b"x", datetime(2024, 1, 2, 1, 0, 0, tzinfo=HKT), "json")
    assert item.path.parent.name == "2024-01-01"
    assert item.path.name.startswith("170000-")


def test_same_content_kept_once(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path)
    first = archive.put("f", b"same bytes", T0, "xml")
    again = archive.put("f", b"same bytes", T0 + timedelta(minutes=2), "xml")
    next_day = archive.put("f", b"same bytes", T0 + timedelta(days=1), "xml")
    assert first.created and not again.created and not next_day.created
    assert again.path == first.path == next_day.path
    assert len(list(tmp_path.rglob("*.zst"))) == 1
    # A fresh instance (restart) sees what is on disk.
    fresh = RawArchive(tmp_path)
    assert not fresh.put("f", b"same bytes", T0 + timedelta(days=3), "xml").created
    assert len(list(tmp_path.rglob("*.zst"))) == 1
    # Different content, or the same content of another feed: a new file.
    assert archive.put("f", b"other bytes", T0, "xml").created
    assert archive.put("g", b"same bytes", T0, "xml").created
    assert len(list(tmp_path.rglob("*.zst"))) == 3


def test_concurrent_puts_keep_one_file(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path)
    barrier = threading.Barrier(8)

    def put(i: int) -> None:
        barrier.wait()
        archive.put("f", b"raced payload", T0 + timedelta(seconds=i), "xml")

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(tmp_path.rglob("*.zst"))) == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_no_temp_files_left_and_failed_write_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = RawArchive(tmp_path)
    archive.put("f", b"one", T0, "xml")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]

    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("citypulse.ingest.archive.os.replace", boom)
    with pytest.raises(OSError):
        archive.put("f", b"two", T0, "xml")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert archive.find("f", hashlib.sha256(b"two").hexdigest()) is None


def test_list_by_feed_and_day(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path)
    for i in range(3):
        archive.put("a", f"a{i}".encode(), T0 + timedelta(hours=12 * i), "json")
    archive.put("b", b"b0", T0, "xml")
    (tmp_path / "a" / "2024-01-02" / "notes.txt").write_text("not an archive file")

    all_a = archive.entries("a")
    assert [e.fetched_at for e in all_a] == [T0 + timedelta(hours=12 * i) for i in range(3)]
    assert [archive.read(e) for e in all_a] == [b"a0", b"a1", b"a2"]
    assert archive.days("a") == [date(2024, 1, 2), date(2024, 1, 3)]
    # 03:04 and 15:04 on the 2nd, 03:04 on the 3rd (UTC)
    assert len(archive.entries("a", date(2024, 1, 2))) == 2
    assert len(archive.entries("a", date(2024, 1, 3))) == 1
    assert archive.entries("a", date(2025, 1, 1)) == []
    assert archive.feeds() == ["a", "b"]
    assert len(archive.entries()) == 4
    found = archive.find("a", hashlib.sha256(b"a1").hexdigest())
    assert found is not None and archive.read(found) == b"a1"
    assert archive.find("a", "0" * 64) is None
    assert archive.entries("missing") == []


def test_corruption_is_detected(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path)
    item = archive.put("f", b"original", T0, "xml")
    item.path.write_bytes(zstandard.ZstdCompressor().compress(b"tampered"))
    with pytest.raises(ArchiveError, match="does not match"):
        archive.read(item)
    item.path.write_bytes(b"not zstd at all")
    with pytest.raises(ArchiveError):
        archive.read(item)


@pytest.mark.parametrize("feed_id", ["../etc", "a/b", "", ".hidden", "x" * 200])
def test_unsafe_feed_ids_refused(tmp_path: Path, feed_id: str) -> None:
    with pytest.raises(ValueError):
        RawArchive(tmp_path).put(feed_id, b"x", T0, "xml")


def test_unsafe_extension_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RawArchive(tmp_path).put("f", b"x", T0, "../x")


def test_naive_time_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RawArchive(tmp_path).put("f", b"x", datetime(2024, 1, 1), "xml")
