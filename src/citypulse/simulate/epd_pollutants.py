"""Simulated EPD past-24-hour pollutant concentrations (``24pc_Eng.xml``): the same stations and
hours as the AQHI simulator, ``-`` where a station has no CO monitor or an instrument is out."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from citypulse.simulate import _hk_air as air
from citypulse.simulate.epd_aqhi import rfc822

HEADER = (
    "<title>Environmental Protection Department - AQHI</title><link>http://www.aqhi.gov.hk"
    "</link><description>Environmental Protection Department - Past 24-hr Pollutant "
    "Concentration</description><language>en-us</language><copyright>Environmental Protection "
    "Department</copyright><webMaster>enquiry@epd.gov.hk</webMaster>"
)


class PollutantsSimulator:
    feed_id = "epd-pollutants"
    interval_s = 3600

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        last = air.latest_hour(at)
        hours = [last - timedelta(hours=k) for k in range(23, -1, -1)]
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<AQHI24HrPollutantConcentration>',
            HEADER,
            f"<lastBuildDate>{rfc822(last + timedelta(minutes=30))}</lastBuildDate>",
        ]
        for st in air.stations():
            for h in hours:
                values = air.concentrations(st.name_en, h)
                cells = "".join(
                    f"<{k}>{'-' if values[k] is None else f'{values[k]:.1f}'}</{k}>"
                    for k in air.POLLUTANTS
                )
                parts.append(
                    f"<PollutantConcentration><StationName>{st.name_en}</StationName>"
                    f"<DateTime>{rfc822(h)}</DateTime>{cells}</PollutantConcentration>"
                )
        parts.append("</AQHI24HrPollutantConcentration>")
        return "".join(parts).encode()


SIMULATOR = PollutantsSimulator()
