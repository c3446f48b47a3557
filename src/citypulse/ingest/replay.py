"""Replay recorded payload files (captures, or our own raw archive) through the pipeline.

Files are processed in data-time order so ``latest`` ends on the newest payload and event
updates apply in sequence. The time comes from the file name when it carries one (the capture
convention: ``..._20161014-180048.xml`` and ``..._20230821-0002HKT.xml`` are Hong Kong time,
``..._20251021_012903Z.json`` is UTC, archive files ``<YYYY-MM-DD>/<HHMMSS>-<sha>...`` are UTC),
else the file's modification time. Replaying is idempotent: a second run stores nothing.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from citypulse.feeds.base import HKT, FeedSpec
from citypulse.ingest.archive import ArchiveError, parse_archive_path, read_compressed
from citypulse.ingest.pipeline import Pipeline

log = logging.getLogger(__name__)

_STAMP = re.compile(
    r"(?<!\d)(?P<date>\d{8})[-_T](?P<time>\d{6}|\d{4})(?!\d)(?P<zone>Z|HKT|UTC)?",
    re.IGNORECASE,
)
_DATE = re.compile(r"(?<!\d)(?P<date>\d{4}-\d{2}-\d{2})(?!\d)")
_SKIP_NAMES = {"README.md", "FORMATS.md", "PROVENANCE.md"}

Resolver = Callable[[Path], FeedSpec | None]


@dataclass(slots=True)
class FeedReplayCounts:
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    error: int = 0
    rows: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class ReplayReport:
    files: int = 0
    feeds: dict[str, FeedReplayCounts] = field(default_factory=dict)
    unknown: list[Path] = field(default_factory=list)

    def counts(self, feed_id: str) -> FeedReplayCounts:
        return self.feeds.setdefault(feed_id, FeedReplayCounts())

    @property
    def stored(self) -> int:
        return sum(c.stored for c in self.feeds.values())

    @property
    def duplicate(self) -> int:
        return sum(c.duplicate for c in self.feeds.values())

    @property
    def quarantined(self) -> int:
        return sum(c.quarantined for c in self.feeds.values())

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.feeds.values())

    def __str__(self) -> str:
        """A short table for people (``citypulse replay``)."""
        lines = [f"{self.files} files, {len(self.unknown)} not recognised as a feed payload"]
        for fid, c in sorted(self.feeds.items()):
            line = (
                f"  {fid}: stored {c.stored} ({c.rows} rows), duplicate {c.duplicate}, "
                f"quarantined {c.quarantined}"
            )
            if c.error:
                line += f", errors {c.error}"
            if c.reasons:
                line += " [" + ", ".join(f"{r} x{n}" for r, n in c.reasons.most_common()) + "]"
            lines.append(line)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "unknown": [str(p) for p in self.unknown],
            "feeds": {
                fid: {
                    "stored": c.stored,
                    "duplicate": c.duplicate,
                    "quarantined": c.quarantined,
                    "error": c.error,
                    "rows": c.rows,
                    "reasons": dict(c.reasons),
                }
                for fid, c in sorted(self.feeds.items())
            },
        }


def time_from_name(name: str) -> datetime | None:
    """The capture time a file name carries (UTC), or None. Without a zone suffix the time is
    Hong Kong local, the convention of the captures; a bare date means 00:00 HKT."""
    m = _STAMP.search(name)
    if m is not None:
        t = m["time"]
        fmt = "%Y%m%d%H%M%S" if len(t) == 6 else "%Y%m%d%H%M"
        try:
            naive = datetime.strptime(m["date"] + t, fmt)
        except ValueError:
            naive = None
        if naive is not None:
            zone = (m["zone"] or "").upper()
            tz = UTC if zone in ("Z", "UTC") else HKT
            return naive.replace(tzinfo=tz).astimezone(UTC)
    d = _DATE.search(name)
    if d is not None:
        try:
            return datetime.strptime(d["date"], "%Y-%m-%d").replace(tzinfo=HKT).astimezone(UTC)
        except ValueError:
            return None
    return None


def _default_resolver() -> Resolver:
    from citypulse.feeds.registry import feed_for_file

    return feed_for_file


def _resolver_for(feeds: Mapping[str, FeedSpec]) -> Resolver:
    """The registry's rule over a given set of feeds: folder name first, then file patterns."""

    def resolve(path: Path) -> FeedSpec | None:
        if path.parent.name in feeds:
            return feeds[path.parent.name]
        for spec in feeds.values():
            if any(fnmatch.fnmatch(path.name, pat) for pat in spec.file_patterns):
                return spec
        return None

    return resolve


@dataclass(frozen=True, slots=True)
class _Item:
    when: datetime
    path: Path
    spec: FeedSpec
    archived: bool


def _classify(path: Path, resolve: Resolver) -> _Item | None:
    info = parse_archive_path(path)
    if info is not None:
        # Our own archive: <feed_id>/<day>/<file>; ask with a path whose folder is the feed id.
        spec = resolve(path.parent.parent / path.name)
        if spec is not None and spec.id == info[0]:
            return _Item(info[1], path, spec, archived=True)
    spec = resolve(path)
    if spec is None:
        return None
    if spec.file_patterns and not any(fnmatch.fnmatch(path.name, p) for p in spec.file_patterns):
        # A feed's folder also holds reference tables and schemas (.csv, .xsd): not payloads.
        return None
    when = time_from_name(path.name) or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return _Item(when, path, spec, archived=False)


def replay(
    directory: Path | str,
    pipeline: Pipeline,
    *,
    feeds: Mapping[str, FeedSpec] | None = None,
) -> ReplayReport:
    """Ingest every recognised payload file under ``directory`` (recursively), oldest first.

    ``feeds`` restricts/overrides the feeds to match against (default: the registry).
    """
    root = Path(directory)
    resolve = _resolver_for(feeds) if feeds is not None else _default_resolver()
    report = ReplayReport()
    items: list[_Item] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        report.files += 1
        item = None if path.name in _SKIP_NAMES else _classify(path, resolve)
        if item is None:
            report.unknown.append(path)
        else:
            items.append(item)
    items.sort(key=lambda i: (i.when, str(i.path)))

    for item in items:
        counts = report.counts(item.spec.id)
        try:
            payload = read_compressed(item.path) if item.archived else item.path.read_bytes()
        except (OSError, ArchiveError) as exc:
            log.warning("replay: cannot read %s: %s", item.path, exc)
            counts.error += 1
            counts.reasons["unreadable-file"] += 1
            continue
        outcome = pipeline.process(item.spec, payload, item.when, "replay")
        if outcome.status == "stored":
            counts.stored += 1
            counts.rows += outcome.rows
        elif outcome.status == "duplicate":
            counts.duplicate += 1
        elif outcome.status == "quarantined":
            counts.quarantined += 1
            counts.reasons[outcome.reason or "?"] += 1
        else:
            counts.error += 1
            counts.reasons[outcome.reason or "?"] += 1
    return report
