"""Simulated EPD past-24-hour AQHI (``24aqhi_Eng.xml``): 18 stations x 24 hours in EPD's layout
(one line after the declaration, grouped by station, oldest first, RFC-822 ``+0800`` times),
values from the shared air-quality truth so past hours never change between polls."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import format_datetime

from citypulse.feeds.base import HKT
from citypulse.simulate import _hk_air as air

HEADER = (
    "<title>Environmental Protection Department - AQHI</title><link>http://www.aqhi.gov.hk"
    "</link><description>Environmental Protection Department - Past 24-hr AQHI</description>"
    "<language>en-us</language><copyright>Environmental Protection Department</copyright>"
    "<webMaster>enquiry@epd.gov.hk</webMaster>"
)


def rfc822(ts: datetime) -> str:
    return format_datetime(ts.astimezone(HKT))


def station_type(extra: str) -> str:
    return "Roadside Stations" if extra == "roadside" else "General Stations"


class AqhiSimulator:
    feed_id = "epd-aqhi"
    interval_s = 3600

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        last = air.latest_hour(at)
        hours = [last - timedelta(hours=k) for k in range(23, -1, -1)]
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<AQHI24HrReport>',
            HEADER,
            f"<lastBuildDate>{rfc822(last + timedelta(minutes=30))}</lastBuildDate>",
        ]
        for st in air.stations():
            kind = station_type(st.extra)
            for h in hours:
                value = air.aqhi(st.name_en, h)
                text = "10+" if value > 10 else str(value)
                parts.append(
                    f"<item><type>{kind}</type><StationName>{st.name_en}</StationName>"
                    f"<DateTime>{rfc822(h)}</DateTime><aqhi>{text}</aqhi></item>"
                )
        parts.append("</AQHI24HrReport>")
        return "".join(parts).encode()


SIMULATOR = AqhiSimulator()
