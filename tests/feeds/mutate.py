"""Shared Hypothesis helpers for feed parser tests: mutate a real payload, then check the
parser's contract (only FeedError ever escapes; no observation value that the input lacks).

Mutations are byte-level and format-agnostic (truncate, cut, duplicate, insert tricky tokens,
rewrite numbers) so one helper serves XML, JSON and CSV feeds alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from hypothesis import strategies as st

from citypulse.feeds.base import FeedError
from citypulse.model import Batch

Parser = Callable[[bytes, datetime], Batch]

FETCHED_AT = datetime(2024, 4, 6, 13, 30, tzinfo=UTC)

# Tokens that broke real parsers or probe edge cases: markup, entities, numbers and markers
# the HK feeds use for "missing", encodings, control bytes.
TRICKY: tuple[bytes, ...] = (
    b"&",
    b"&amp;",
    b"&nbsp;",
    b"&#0;",
    b"<",
    b">",
    b"</",
    b"<!ENTITY x 'y'>",
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"]]>",
    b"<![CDATA[",
    b'"',
    b",",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"true",
    b"-1",
    b"-",
    b"M",
    b"",
    b" ",
    b"0",
    b"999999999",
    b"1e309",
    b"NaN",
    b"-0.0",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\xe4\xb8\xad",
    b"\n",
    b"\t",
    b"2024-02-30T25:61:00",
    b"0001-01-01",
    b"9999-12-31 23:59:59",
    b"\xd8\x00",
)

_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


@st.composite
def _one_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    n = len(data)
    kind = draw(st.sampled_from(["truncate", "cut", "dup", "insert", "number", "flip", "swap"]))
    if n == 0:
        return draw(st.sampled_from(TRICKY))
    i = draw(st.integers(0, n))
    if kind == "truncate":
        return data[:i]
    if kind == "cut":
        j = draw(st.integers(i, min(n, i + 400)))
        return data[:i] + data[j:]
    if kind == "dup":
        j = draw(st.integers(i, min(n, i + 400)))
        return data[:j] + data[i:j] + data[j:]
    if kind == "insert":
        token = draw(st.sampled_from(TRICKY) | st.binary(min_size=1, max_size=8))
        return data[:i] + token + data[i:]
    if kind == "number":
        # Rewrite the number nearest after i: out-of-range and sign changes are the point.
        m = _NUMBER.search(data, i) or _NUMBER.search(data)
        if m is None:
            return data
        new = draw(
            st.sampled_from([b"-1", b"0", b"-5", b"1000000", b"12.5", b"", b"x", b"130", b"255"])
            | st.integers(-10**6, 10**6).map(lambda v: str(v).encode())
        )
        return data[: m.start()] + new + data[m.end() :]
    if kind == "flip":
        if i == n:
            return data
        byte = draw(st.integers(0, 255))
        return data[:i] + bytes([byte]) + data[i + 1 :]
    # swap two slices' order around i
    j = draw(st.integers(i, min(n, i + 200)))
    return data[:i] + data[j : min(n, j + (j - i))] + data[i:j] + data[min(n, j + (j - i)) :]


@st.composite
def mutated(draw: st.DrawFn, sample: bytes, max_mutations: int = 4) -> bytes:
    """``sample`` after 1..max_mutations random byte-level mutations."""
    data = sample
    for _ in range(draw(st.integers(1, max_mutations))):
        data = draw(_one_mutation(data))
    return data


def numbers_in(payload: bytes) -> set[float]:
    """Every number written in the payload (as floats): the values a parser may emit."""
    out: set[float] = set()
    for m in _NUMBER.finditer(payload):
        try:
            out.add(float(m.group()))
        except (ValueError, OverflowError):
            continue
    return out


def check_contract(
    parse: Parser,
    payload: bytes,
    fetched_at: datetime = FETCHED_AT,
    *,
    also_allowed: Iterable[float] = (),
) -> Batch | None:
    """Run the parser on ``payload``: FeedError is fine (returns None); any other exception
    fails the test; every observation value must be a number present in the payload (or in
    ``also_allowed``: documented mappings such as AQHI "10+" -> 11 or a 0/1 flag)."""
    try:
        batch = parse(payload, fetched_at)
    except FeedError as exc:
        assert exc.reason and " " not in exc.reason, f"unstable reason {exc.reason!r}"
        return None
    assert isinstance(batch, Batch)
    values = batch.observations.column("value").to_pylist()
    if values:
        allowed = numbers_in(payload) | set(also_allowed)
        for v in values:
            assert v is None or v in allowed, f"value {v} not present in the input"
    assert batch.skipped >= 0
    return batch
