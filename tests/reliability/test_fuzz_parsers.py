"""Cross-feed fuzzing of every parser. What it adds to the per-feed Hypothesis tests in
``tests/feeds`` (each mutates its own feed's samples):

* **confusion**: every parser gets every other feed's real payloads (a wrong URL, a publisher
  moving files around, an archive mix-up): only ``FeedError`` may escape, and a foreign payload
  must not come out as observations of this feed;
* **mutated foreign payloads** through every parser (shared mutators, ``tests/feeds/mutate.py``);
* **the whole pipeline** (archive, dedupe, parse, store, health) on mutated payloads: it never
  raises and ends every payload as stored, duplicate or quarantined with a stable reason.

Seeds are the real captures (one of each file pattern, smallest first) plus one simulator
payload for each feed without a capture. Cases tried are counted into
``test-artifacts/fuzz-parsers.json``.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.feeds.mutate import check_contract, mutated

from citypulse.feeds.base import FeedError, FeedSpec
from citypulse.feeds.registry import all_feeds, feed_for_file
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.simulate.registry import all_simulators
from citypulse.store.duckdb import DuckDBStore

AT = datetime(2024, 6, 3, 4, 0, tzinfo=UTC)
MAX_SEED_BYTES = 400_000  # bigger captures add time, not new shapes
COUNTS: Counter[str] = Counter()
# Feeds whose formats are the same document type (RSS from one publisher): a foreign payload
# may legitimately parse, so only the contract is checked between them.
SIBLINGS = [{"hko-currentweather-rss", "hko-nday-rss", "hko-warning-rss"}]


def _siblings(a: str, b: str) -> bool:
    return any(a in group and b in group for group in SIBLINGS)


@pytest.fixture(scope="module")
def seeds(feeds_dir: Path) -> list[tuple[str, bytes]]:
    """(feed id, payload) per seed, every registered feed represented."""
    found: dict[str, list[Path]] = {}
    for path in sorted(feeds_dir.rglob("*")):
        if not path.is_file() or path.stat().st_size > MAX_SEED_BYTES:
            continue
        spec = feed_for_file(path)
        if spec is not None:
            found.setdefault(spec.id, []).append(path)
    out = [(fid, min(paths, key=lambda p: p.stat().st_size).read_bytes())
           for fid, paths in sorted(found.items())]
    sims = all_simulators()
    for fid in sorted(all_feeds()):
        if fid not in found and fid in sims:
            out.append((fid, sims[fid].emit(AT, random.Random(fid))))
    return out


@pytest.fixture(scope="module", autouse=True)
def _report(artifacts_dir: Path) -> Iterator[None]:
    yield
    if COUNTS:
        (artifacts_dir / "fuzz-parsers.json").write_text(json.dumps(dict(COUNTS), indent=1))
        print("fuzz-parsers:", dict(COUNTS))


def test_every_parser_rejects_every_other_feeds_payloads(seeds: list[tuple[str, bytes]]) -> None:
    specs = all_feeds()
    assert {fid for fid, _ in seeds} >= {f for f in specs if f in all_simulators()}
    accepted: list[str] = []
    for spec in specs.values():
        for source, payload in seeds:
            COUNTS["confusion"] += 1
            try:
                batch = spec.parse(payload, AT)
            except FeedError as exc:
                assert exc.reason and " " not in exc.reason, exc.reason
                continue
            except Exception as exc:  # the contract: FeedError only
                raise AssertionError(
                    f"{spec.id} parser raised {type(exc).__name__}: {exc} on a {source} payload"
                ) from exc
            if source == spec.id or _siblings(source, spec.id):
                continue
            if batch.observations.num_rows or batch.events:
                accepted.append(f"{spec.id} <- {source}")
    assert not accepted, f"foreign payloads taken as data: {accepted}"


def _cases(seeds: list[tuple[str, bytes]]) -> st.SearchStrategy[tuple[FeedSpec, str, bytes]]:
    """(parser, seed's feed, mutated seed): half the time the seed's own parser (deep paths),
    else any parser (confusion)."""
    specs = all_feeds()
    own = st.sampled_from(seeds).map(lambda s: (specs[s[0]], s))
    any_parser = st.tuples(st.sampled_from(list(specs.values())), st.sampled_from(seeds))
    return st.one_of(own, any_parser).flatmap(
        lambda t: mutated(t[1][1]).map(lambda p: (t[0], t[1][0], p))
    )


def _mutated_foreign(seeds: list[tuple[str, bytes]], examples: int, run: str) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=(run == "quick"))
    @given(case=_cases(seeds))
    def check(case: tuple[FeedSpec, str, bytes]) -> None:
        spec, _source, payload = case
        COUNTS[f"mutated-{run}"] += 1
        check_contract(spec.parse, payload, AT)

    check()


def test_mutated_payloads_through_any_parser(seeds: list[tuple[str, bytes]]) -> None:
    _mutated_foreign(seeds, 150, "quick")


@pytest.mark.slow
def test_mutated_payloads_through_any_parser_long(seeds: list[tuple[str, bytes]]) -> None:
    _mutated_foreign(seeds, 20_000, "long")


def _pipeline_fuzz(seeds: list[tuple[str, bytes]], tmp: Path, examples: int, run: str) -> None:
    store = DuckDBStore(str(tmp / f"fuzz-{run}.duckdb"))
    pipeline = Pipeline(store, RawArchive(tmp / f"archive-{run}"))
    statuses: Counter[str] = Counter()

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=(run == "quick"))
    @given(case=_cases(seeds))
    def check(case: tuple[FeedSpec, str, bytes]) -> None:
        spec, _source, payload = case
        COUNTS[f"pipeline-{run}"] += 1
        outcome = pipeline.process(spec, payload, AT, "replay")
        statuses[outcome.status] += 1
        assert outcome.status in ("stored", "duplicate", "quarantined"), outcome
        if outcome.status == "quarantined":
            assert outcome.reason and " " not in outcome.reason, outcome.reason
            assert outcome.reason != "parser-crash", f"{spec.id} parser crashed"

    try:
        check()
    finally:
        store.close()
    for status, n in statuses.items():
        COUNTS[f"pipeline-{run}-{status}"] += n


def test_pipeline_never_fails_on_mutated_payloads(
    seeds: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    _pipeline_fuzz(seeds, tmp_path, 60, "quick")


@pytest.mark.slow
def test_pipeline_never_fails_on_mutated_payloads_long(
    seeds: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    _pipeline_fuzz(seeds, tmp_path, 3_000, "long")


def _atheris(seeds: list[tuple[str, bytes]], tmp: Path, runs: int, run: str) -> None:
    pytest.importorskip("atheris")
    script = Path(__file__).with_name("atheris_parsers.py")
    corpus = tmp / "corpus"
    corpus.mkdir()
    order = sorted(all_feeds())
    for n, (feed_id, payload) in enumerate(seeds):
        if len(payload) <= 65_536:
            (corpus / f"seed-{n}").write_bytes(bytes([order.index(feed_id)]) + payload)
    crashes = tmp / "crashes"
    crashes.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), str(corpus), f"-runs={runs}", "-max_len=65536",
         f"-artifact_prefix={crashes}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=3600,
    )
    found = list(crashes.iterdir())
    assert proc.returncode == 0 and not found, (
        f"atheris found a crash ({[p.name for p in found]}):\n{proc.stderr[-4000:]}"
    )
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", proc.stderr)
    COUNTS[f"atheris-{run}"] += int(m.group(1)) if m else runs
    if cov:
        COUNTS[f"atheris-{run}-coverage-edges"] = int(cov[-1][0])


def test_atheris_harness_runs(seeds: list[tuple[str, bytes]], tmp_path: Path) -> None:
    """A short run so the harness keeps working; the real digging is the slow run."""
    _atheris(seeds, tmp_path, 300, "quick")


@pytest.mark.slow
def test_atheris_parsers(seeds: list[tuple[str, bytes]], tmp_path: Path) -> None:
    _atheris(seeds, tmp_path, 100_000, "long")
