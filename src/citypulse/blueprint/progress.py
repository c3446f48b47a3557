"""Progress per area and overall, from initiative statuses.

'Delivered' counts a service that is live or a finite project done (launched, ongoing,
completed, ended); 'underway' is in_progress; 'planned' has not started; 'unknown' means no
progress was found. Shares are of the initiatives *captured in our data*, which is fewer than the
official count (see the YAML's coverage note), and pages say so next to the numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from citypulse.blueprint.models import Initiative, Status
from citypulse.blueprint.registry import AREAS

# Order of the segments in a stacked bar: done first, unknown last.
BAR_ORDER: tuple[Status, ...] = (
    "completed",
    "ended",
    "launched",
    "ongoing",
    "in_progress",
    "planned",
    "unknown",
)
DELIVERED: frozenset[str] = frozenset({"completed", "ended", "launched", "ongoing"})


@dataclass(frozen=True, slots=True)
class Segment:
    status: str
    count: int
    x_pct: float  # left edge in a 0-100 bar
    width_pct: float


@dataclass(frozen=True, slots=True)
class Progress:
    area_id: str | None  # None: all areas
    total: int
    by_status: dict[str, int]
    delivered: int
    underway: int
    planned: int
    unknown: int

    @property
    def delivered_pct(self) -> float:
        return 100.0 * self.delivered / self.total if self.total else 0.0

    @property
    def underway_pct(self) -> float:
        return 100.0 * self.underway / self.total if self.total else 0.0

    def segments(self) -> list[Segment]:
        """Stacked-bar geometry, in BAR_ORDER, empty statuses left out."""
        out: list[Segment] = []
        x = 0.0
        for status in BAR_ORDER:
            n = self.by_status.get(status, 0)
            if not n or not self.total:
                continue
            width = 100.0 * n / self.total
            out.append(Segment(status, n, round(x, 3), round(width, 3)))
            x += width
        return out


def compute_progress(initiatives: Iterable[Initiative], area_id: str | None = None) -> Progress:
    items = [i for i in initiatives if area_id is None or i.area == area_id]
    counts = Counter(i.status for i in items)
    by_status: dict[str, int] = {s: counts.get(s, 0) for s in BAR_ORDER}
    return Progress(
        area_id=area_id,
        total=len(items),
        by_status=by_status,
        delivered=sum(by_status[s] for s in DELIVERED),
        underway=by_status["in_progress"],
        planned=by_status["planned"],
        unknown=by_status["unknown"],
    )


def progress_by_area(initiatives: Iterable[Initiative]) -> list[Progress]:
    """One Progress per area/chapter in registry order."""
    items = list(initiatives)
    return [compute_progress(items, a.id) for a in AREAS]
