"""hko-currentweather-rss parser: the 7 real 2023 bulletins (tables re-read here with an HTML
parser, times from the title), midnight-spanning rain periods, bad input and fuzzing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from citypulse.feeds import hko_currentweather_rss as cw
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed
from citypulse.model import Batch

from .mutate import check_contract, mutated

FOLDER = "hko-currentweather-rss"
FETCHED = datetime(2023, 8, 21, 12, 5, tzinfo=UTC)
HKT = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def files(feeds_dir: Path) -> list[Path]:
    found = sorted((feeds_dir / FOLDER).glob("*.xml"))
    assert len(found) == 7
    return found


def tables(raw: bytes) -> tuple[dict[str, float], dict[str, str]]:
    """(station -> degrees, district -> rainfall text) from the CDATA, via lxml.html."""
    desc = etree.fromstring(raw).findtext("channel/item/description")
    doc = lxml.html.fromstring(f"<div>{desc}</div>")
    temps: dict[str, float] = {}
    rain: dict[str, str] = {}
    for tr in doc.iter("tr"):
        cells = [" ".join(td.text_content().split()) for td in tr.findall("td")]
        if cells[1].endswith(("degrees ;", "degrees .")):
            temps[cells[0]] = float(cells[1].split()[0])
        else:
            rain[cells[0]] = cells[1]
    return temps, rain


def named(b: Batch, metric: str) -> dict[str, tuple[float | None, str | None, datetime]]:
    names = {e.id: e.name_en for e in b.entities}
    return {
        str(names[o.entity_id]): (o.value, o.label, o.ts)
        for o in b.observation_list()
        if o.metric == metric
    }


def test_spec() -> None:
    spec = get_feed("hko-currentweather-rss")
    assert spec.url == "https://rss.weather.gov.hk/rss/CurrentWeather.xml"
    assert spec.archive_url == spec.url and spec.enabled_by_default is False
    assert feed_for_file(Path("CurrentWeather_20230819-1331HKT.xml")) is spec


def test_every_real_sample(files: list[Path]) -> None:
    for path in files:
        raw = path.read_bytes()
        b = cw.parse(raw, FETCHED)
        assert b.skipped == 0, (path.name, b.notes)
        title = etree.fromstring(raw).findtext("channel/item/title")
        hh, mm, dd, mo, yyyy = map(int, re.findall(r"\d+", title))
        bulletin = datetime(yyyy, mo, dd, hh, mm, tzinfo=HKT)
        observed = bulletin.replace(minute=0).astimezone(UTC)
        temps, rain = tables(raw)
        assert len(temps) == 27
        got = named(b, "temperature_c")
        assert {k: v[0] for k, v in got.items()} == temps
        assert {v[2] for v in got.values()} == {observed}
        text = raw.decode()
        air = float(re.search(r"Air temperature : (\d+)", text)[1])  # type: ignore[index]
        assert got["Hong Kong Observatory"][0] == air
        rh = float(re.search(r"Relative Humidity : (\d+)", text)[1])  # type: ignore[index]
        assert named(b, "humidity_pct") == {"Hong Kong Observatory": (rh, None, observed)}
        rains = named(b, "rainfall_mm")
        assert len(rains) == len(rain)
        for district, cell in rain.items():
            low, high = re.findall(r"\d+", cell)
            assert rains[district][:2] == (float(high), f"{low}-{high}")
        uv = re.search(r"King's Park : (\d+)", text)
        assert (uv is not None) == ("King's Park" in named(b, "uv_index"))
        assert (f"{cw.FEED_ID}:warningMessage:{bulletin:%Y%m%d%H%M}" in {e.id for e in b.events}
                ) == ("warning_message" in text)


def test_midnight_rain_period(files: list[Path]) -> None:
    raw = next(p for p in files if "0821-0002" in p.name).read_bytes()
    b = cw.parse(raw, FETCHED)
    rains = named(b, "rainfall_mm")
    # "Between 10:45 and 11:45 p.m." in the 00:02 bulletin of the 21st: the evening before.
    assert {v[2] for v in rains.values()} == {datetime(2023, 8, 20, 15, 45, tzinfo=UTC)}
    assert rains["Sai Kung"][:2] == (11.0, "0-11")
    assert {v[2] for v in named(b, "temperature_c").values()} == {
        datetime(2023, 8, 20, 16, 0, tzinfo=UTC)  # "At midnight" = 00:00 on the 21st HKT
    }


def test_messages(files: list[Path]) -> None:
    raw = next(p for p in files if "0819-1341" in p.name).read_bytes()
    b = cw.parse(raw, FETCHED)
    ev = {e.properties["field"]: e for e in b.events}
    assert ev["warningMessage"].body_en is not None
    assert ev["warningMessage"].body_en.splitlines() == [
        "The Thunderstorm Warning has been issued. It will remain effective until 3:00 p.m. "
        "today. A few squally thunderstorms are expected to occur over Hong Kong.",
        "The Special Announcement of Flooding in Northern New Territories has been issued.",
    ]
    assert ev["specialWxTips"].properties["lines"] == 2
    assert "river flooding" in (ev["specialWxTips"].body_en or "")


def item(description: str, title: str = "Bulletin updated at 00:02 HKT 01/01/2024") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item>'
        f"<title>{title}</title><pubDate>Sun, 31 Dec 2023 16:02:00 GMT</pubDate>"
        f"<description><![CDATA[{description}]]></description></item></channel></rss>"
    ).encode()


BODY = (
    "<p>At midnight at the Hong Kong Observatory :<br/>Air temperature : 15 degrees Celsius<br/>"
    "Relative Humidity : 60 per cent<br/>The air temperatures at other places were:<table>"
    "<tr><td><font size='-1'>Tai Po</font></td><td><font size='-1'>12 degrees ;</font></td></tr>"
    "<tr><td><font size='-1'>New Place</font></td><td><font size='-1'>14 degrees .</font></td>"
    "</tr></table></p>"
)


def test_new_year_midnight_and_fallbacks() -> None:
    b = cw.parse(item(BODY), FETCHED)
    obs = named(b, "temperature_c")
    assert obs["Tai Po"][2] == datetime(2023, 12, 31, 16, tzinfo=UTC)
    assert obs["Hong Kong Observatory"][0] == 15  # from the header: not in the table
    assert obs["New Place"][0] == 14
    # Title without a time: pubDate (GMT) is used.
    b2 = cw.parse(item(BODY, title="Bulletin"), FETCHED)
    assert named(b2, "temperature_c")["Tai Po"][2] == obs["Tai Po"][2]


def test_values_out_of_range_and_odd_rows() -> None:
    body = BODY.replace("12 degrees", "99 degrees").replace(
        "</table></p>",
        "</table></p>Between 10:45 and 11:45 p.m., the rainfall recorded in various regions "
        "were:<table><tr><td>Tai Po</td><td>5 to 3&nbsp;mm;</td></tr>"
        "<tr><td>Sha Tin</td><td>lots</td></tr><tr><td>North District</td><td>4&nbsp;mm.</td></tr>"
        "</table>",
    )
    b = cw.parse(item(body), FETCHED)
    assert b.skipped == 3, b.notes
    (north,) = named(b, "rainfall_mm").values()
    assert north == (4.0, None, datetime(2023, 12, 31, 15, 45, tzinfo=UTC))  # 23:45 HKT


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<html><body>502 Bad Gateway</body></html>", "html-error-page"),
        (b"<rss><channel><item><title>", "malformed-xml"),
        (b"<rdf/>", "unexpected-root"),
        (b"<rss><channel/></rss>", "missing-field"),
        (item(""), "missing-field"),
        (item(BODY, title="x").replace(b"<pubDate>Sun, 31 Dec 2023 16:02:00 GMT</pubDate>", b""),
         "missing-field"),
        (item("<p>Nothing useful here</p>"), "missing-field"),
        (item("<p>At 25 p.m. nothing</p>"), "bad-timestamp"),
        (item("<p>At 3 p.m. it was nice.</p>"), "no-data"),
        (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">]><rss>&lol;</rss>',
         "xml-entity-declaration"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        cw.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_bom_duplicates_and_unknown_markup(files: list[Path]) -> None:
    raw = files[0].read_bytes()
    assert cw.parse(b"\xef\xbb\xbf" + raw, FETCHED).n_observations == (
        cw.parse(raw, FETCHED).n_observations
    )
    row = ("<tr><td><font size='-1'>Tai Po</font></td>"
           "<td><font size='-1'>12 degrees ;</font></td></tr>")
    doubled = BODY.replace(row, row + row + "<tr><td><blink>x</blink></td><td>?</td></tr>")
    b = cw.parse(item(doubled), FETCHED)
    assert b.skipped == 1 and "skipped 1: duplicate row" in b.notes  # the odd row is not a match
    assert len(named(b, "temperature_c")) == 3


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(files: list[Path], data: st.DataObject) -> None:
    sample = files[data.draw(st.integers(0, len(files) - 1))].read_bytes()
    check_contract(cw.parse, data.draw(mutated(sample)))
