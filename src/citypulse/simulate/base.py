"""The simulator contract: each module in ``citypulse.simulate`` that defines ``SIMULATOR``
emits payloads of one real feed, byte-compatible with the live format, so the same parser and
ingest path run offline exactly as they would live."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Protocol


class FeedSimulator(Protocol):
    feed_id: str
    # Seconds of simulated time between two payloads (the live feed's update rate).
    interval_s: int

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        """The payload the live feed would serve at ``at`` (UTC-aware)."""
        ...
