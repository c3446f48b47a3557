"""What every feed module shares: the error type, the feed spec, safe XML/JSON decoding, HK time.

Feeds are pure: ``parse(payload, fetched_at) -> Batch`` with no I/O, so they are tested on the
real captured files and fuzzed without a network.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from lxml import etree

from citypulse.model import Batch

HKT = timezone(timedelta(hours=8), "HKT")
"""Hong Kong time: UTC+8 all year (no DST since 1979)."""

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_DOCTYPE_REFUSED = "DOCTYPE/entity declarations refused (no real feed has one)"


class FeedError(Exception):
    """A payload that cannot be turned into a batch. ``reason`` is short and machine-stable
    (e.g. ``malformed-xml``, ``html-error-page``), ``detail`` is for humans."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


Parser = Callable[[bytes, datetime], Batch]


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A registered feed: where it lives, how often to poll, how to parse it, whose it is."""

    id: str
    title_en: str
    title_zh: str
    url: str
    interval_s: int
    parse: Parser
    topics: tuple[str, ...] = ()
    media_type: str = "application/xml"
    licence: str = "DATA.GOV.HK Terms and Conditions of Use"
    attribution: str = ""
    # Glob patterns matching recorded payload file names, for `citypulse replay`.
    file_patterns: tuple[str, ...] = ()
    # The name of the resource in the DATA.GOV.HK historical archive, for backfill.
    archive_url: str | None = None
    enabled_by_default: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    extra: dict[str, Any] = field(default_factory=dict)


def check_size(payload: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    if not payload or not payload.strip():
        raise FeedError("empty-payload", "the payload is empty")
    if len(payload) > max_bytes:
        raise FeedError("payload-too-large", f"{len(payload)} bytes > cap {max_bytes}")


_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)


def looks_like_html(payload: bytes) -> bool:
    return bool(_HTML_START.match(payload[:512].lstrip(b"\xef\xbb\xbf")))


def parse_xml(payload: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted XML: no entity expansion, no DTD loading, no network, size-capped.

    A DOCTYPE with entity declarations is refused outright (billion laughs, XXE); real feeds
    never carry one.
    """
    check_size(payload, max_bytes)
    if looks_like_html(payload):
        raise FeedError("html-error-page", "got an HTML page where XML was expected")
    head = payload[:4096].upper()
    if b"<!ENTITY" in head or b"<!DOCTYPE" in head:
        raise FeedError("xml-entity-declaration", _DOCTYPE_REFUSED)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=True,
    )
    try:
        root = etree.fromstring(payload, parser)
    except (etree.XMLSyntaxError, ValueError, LookupError) as exc:
        # ValueError/LookupError: bad or unknown declared encodings.
        raise FeedError("malformed-xml", str(exc)) from exc
    if root is None:
        raise FeedError("malformed-xml", "no root element")
    # A DOCTYPE hidden past the first 4 KiB (padding) is still refused.
    if root.getroottree().docinfo.doctype:
        raise FeedError("xml-entity-declaration", _DOCTYPE_REFUSED)
    return root


def parse_json(payload: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse untrusted JSON, tolerating a UTF-8 BOM (several HK feeds start with one)."""
    check_size(payload, max_bytes)
    if looks_like_html(payload):
        raise FeedError("html-error-page", "got an HTML page where JSON was expected")
    if payload.startswith(b"\xef\xbb\xbf"):
        payload = payload[3:]
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise FeedError("malformed-json", str(exc)) from exc


def local_name(el: etree._Element) -> str:
    """Tag without namespace: TD feeds appear both with and without a default namespace."""
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def child_text(el: etree._Element, name: str) -> str | None:
    """Text of the first child with local name ``name``, stripped; None if absent or empty."""
    for child in el:
        if local_name(child) == name:
            text = (child.text or "").strip()
            return text or None
    return None


def parse_hk_time(text: str, fmt: str | None = None) -> datetime:
    """Parse a HK timestamp; naive values are HK local time (UTC+8). Result is UTC-aware."""
    text = text.strip()
    try:
        dt = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError as exc:
        raise FeedError("bad-timestamp", f"cannot read time {text!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=HKT)
    return dt.astimezone(UTC)
