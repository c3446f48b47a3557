"""Simulated HKO warning summary (``warnsum``, ``lang=en``): ``{}`` most of the time; rainstorm
signals during heavy showers (amber -> red -> black and back), tropical cyclone signals
(No. 1 -> 3 -> maybe 8 -> 3) a few times a season, thunderstorm warnings with an expiry, very
hot / cold weather warnings, and a ``CANCEL`` entry for 20 minutes after a warning ends."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import orjson

from citypulse.feeds._hk_common import FAMILY_NAMES, WARNING_CODES
from citypulse.simulate import _hk_weather as wx
from citypulse.simulate.hko_rhrread import iso

RAIN_TYPES = {"WRAINA": "Amber", "WRAINR": "Red", "WRAINB": "Black"}


class WarnsumSimulator:
    feed_id = "hko-warnsum"
    interval_s = 120

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        doc: dict[str, Any] = {}
        for w in wx.warnings_at(at):
            rec: dict[str, Any] = {
                "name": FAMILY_NAMES.get(w.family, (w.family, ""))[0],
                "code": w.code,
            }
            if w.family == "WRAIN":
                rec["type"] = RAIN_TYPES[w.code]
            elif w.family == "WTCSGNL":
                rec["type"] = WARNING_CODES[w.code].name_en
            rec["actionCode"] = "CANCEL" if w.cancelled is not None else "ISSUE"
            rec["issueTime"] = iso(w.issued)
            if w.expires is not None:
                rec["expireTime"] = iso(w.expires)
            rec["updateTime"] = iso(w.cancelled or w.issued)
            doc[w.family] = rec
        return orjson.dumps(doc)


SIMULATOR = WarnsumSimulator()
