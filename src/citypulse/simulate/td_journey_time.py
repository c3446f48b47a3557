"""Simulated TD Journey Time Indicators in the real ``jtis_journey_list`` XML (default namespace,
CRLF, 4-space indent), for the sign/destination pairs of the real feed. Times follow the daily
traffic level; the colour follows the delay over free flow; now and then a sign shows the
"congestion" message (JOURNEY_TYPE 2) instead of minutes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from citypulse.feeds.base import HKT
from citypulse.simulate.td_detectors import stable, traffic_level

# (sign, destination) pairs as published by the v1 feed (2018 capture).
PAIRS: tuple[tuple[str, str], ...] = (
    ("H11", "CH"), ("H11", "EH"), ("H1", "CH"), ("H1", "EH"), ("H2", "CH"), ("H2", "EH"),
    ("H2", "WH"), ("H3", "CH"), ("H3", "WH"), ("K01", "CH"), ("K01", "WH"), ("K02", "CH"),
    ("K02", "EH"), ("K03", "CH"), ("K03", "EH"), ("K03", "WH"), ("K04", "CH"), ("K04", "WH"),
    ("K05", "CH"), ("K05", "EH"), ("K06", "CH"), ("K06", "WH"), ("SJ1", "LRT"), ("SJ1", "SMT"),
    ("SJ1", "TSCA"), ("SJ2", "LRT"), ("SJ2", "TCT"), ("SJ2", "TSCA"), ("SJ3", "LRT"),
    ("SJ3", "TCT"), ("SJ3", "TSCA"), ("SJ4", "TKTL"), ("SJ4", "TKTM"), ("SJ5", "TWCP"),
    ("SJ5", "TWTM"),
)

HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
    '<jtis_journey_list xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://data.one.gov.hk/td http://data.one.gov.hk/xsd/td/journeytime.xsd" '
    'xmlns="http://data.one.gov.hk/td">\r\n'
)


class JourneyTimeSimulator:
    feed_id = "td-journey-time"
    interval_s = 120

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        local = at.astimezone(HKT).replace(microsecond=0)
        # Harbour-area signs and SJ signs are captured a few seconds apart (as in the feed).
        captured = {"H": local - timedelta(seconds=25), "S": local - timedelta(seconds=40)}
        level = traffic_level(at)
        out = [HEAD]
        for sign, dest in PAIRS:
            cap = captured["S" if sign.startswith("SJ") else "H"]
            h = stable(f"{sign}-{dest}")
            free_flow = 4 + h % 14
            # Cross-harbour routes suffer most at the peaks.
            sensitivity = 1.5 if dest in ("CH", "EH", "WH") else 1.0
            minutes = free_flow * (1 + sensitivity * level**2) + rng.gauss(0, 0.8)
            minutes = max(1, round(minutes))
            ratio = minutes / free_flow
            colour = 3 if ratio < 1.4 else 2 if ratio < 2.0 else 1
            jtype, data = 1, minutes
            if colour == 1 and rng.random() < 0.1:
                jtype, data = 2, 1  # message code 1: congestion
            out.append(
                "    <jtis_journey_time>\r\n"
                f"        <LOCATION_ID>{sign}</LOCATION_ID>\r\n"
                f"        <DESTINATION_ID>{dest}</DESTINATION_ID>\r\n"
                f"        <CAPTURE_DATE>{cap:%Y-%m-%dT%H:%M:%S}</CAPTURE_DATE>\r\n"
                f"        <JOURNEY_TYPE>{jtype}</JOURNEY_TYPE>\r\n"
                f"        <JOURNEY_DATA>{data}</JOURNEY_DATA>\r\n"
                f"        <COLOUR_ID>{colour}</COLOUR_ID>\r\n"
                "        <JOURNEY_DESC/>\r\n"
                "    </jtis_journey_time>\r\n"
            )
        out.append("</jtis_journey_list>\r\n")
        return "".join(out).encode()


SIMULATOR = JourneyTimeSimulator()
