"""Coverage-guided fuzzing of every feed parser with atheris (libFuzzer for Python).

Hypothesis (``test_fuzz_parsers.py``, ``tests/feeds``) mutates real payloads blindly; atheris
instruments the parsers' Python code and keeps the inputs that reach new branches, so it digs
into rarely-taken paths (odd timestamps, missing fields, type confusion in JSON) over long
runs. lxml and orjson are C and not instrumented: the gain is in our own code.

Input layout: the first byte picks the parser (index into the registry, modulo its size), the
rest is the payload. Anything but ``FeedError`` escaping a parser is a crash: libFuzzer stops,
writes the input to ``<artifact_prefix>crash-<sha1>`` and exits non-zero.

    python tests/reliability/atheris_parsers.py CORPUS_DIR -runs=50000 -max_len=65536
    (the slow test ``test_atheris_parsers`` seeds CORPUS_DIR from the real captures)
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime

import atheris

# Only our own code: instrumenting numpy/pyarrow's Python layers costs start-up, not findings.
with atheris.instrument_imports(include=["citypulse"]):
    from citypulse.feeds.base import FeedError
    from citypulse.feeds.registry import all_feeds

    SPECS = [all_feeds()[k] for k in sorted(all_feeds())]

AT = datetime(2024, 6, 3, 4, 0, tzinfo=UTC)


def parser_index(feed_id: str) -> int:
    return [s.id for s in SPECS].index(feed_id)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    spec = SPECS[data[0] % len(SPECS)]
    with contextlib.suppress(FeedError):
        spec.parse(data[1:], AT)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
