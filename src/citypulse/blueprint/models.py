"""Pydantic models of the Blueprint data, shaped exactly like the shipped YAML.

``extra="forbid"`` everywhere: a misspelt key in the YAML (or in an edit) is an error at start-up,
not a silently ignored field. Dates in the data are *loose* (``2018-07``, ``2020-Q4``,
``undated``) because sources often give only a month; they stay strings, validated by
``dates.parse_loose_date``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from citypulse.blueprint.dates import parse_loose_date

Status = Literal["planned", "in_progress", "launched", "ongoing", "completed", "ended", "unknown"]
STATUSES: tuple[Status, ...] = (
    "planned",
    "in_progress",
    "launched",
    "ongoing",
    "completed",
    "ended",
    "unknown",
)
Evidence = Literal["sourced", "partly_sourced", "concept_only", "seed_only"]
EVIDENCE_LEVELS: tuple[Evidence, ...] = ("sourced", "partly_sourced", "concept_only", "seed_only")
AreaBasis = Literal["source", "inferred"]
AreaKind = Literal["smart_area", "chapter"]

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _loose_date(value: Any) -> Any:
    """YAML turns an unquoted ``2018-07-24`` into a date and ``2020`` into an int: accept both,
    then check the text against the accepted loose-date forms (see ``dates``)."""
    if isinstance(value, date):
        value = value.isoformat()
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = value.strip()
        parse_loose_date(value)
    return value


LooseDateText = Annotated[str, BeforeValidator(_loose_date)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Milestone(_Strict):
    date: LooseDateText
    event: NonEmpty


class Figure(_Strict):
    """A number with its unit, the date it applied and the page it was read from. Ranges and
    qualified counts (``40+``, ``5-10``) stay strings."""

    name: NonEmpty
    value: int | float | str
    unit: str
    as_of: LooseDateText
    source: NonEmpty
    note: str | None = None


class HeadlineFigure(Figure):
    group: NonEmpty


class Area(_Strict):
    id: str
    kind: AreaKind
    name_en: NonEmpty
    name_zh_hant: NonEmpty
    description: NonEmpty
    initiatives_captured: int = Field(ge=0)


class Initiative(_Strict):
    """One Blueprint initiative. ``summary`` is English (the data has no Chinese summaries yet);
    ``summary_zh_hant`` exists so the digital office can add translations as edits."""

    id: str
    area: str
    title_en: NonEmpty
    title_zh_hant: str | None = None
    summary: NonEmpty
    summary_zh_hant: str | None = None
    owner: NonEmpty
    first_blueprint: Literal[2017, 2020] | None = None
    new_in_blueprint_2: bool | None = None
    origin: str | None = None
    status: Status
    status_as_of: LooseDateText
    milestones: list[Milestone] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    sources: list[NonEmpty] = Field(default_factory=list)
    evidence: Evidence
    area_basis: AreaBasis
    notes: str | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"{value!r} is not a lower-case slug like 'mobility-01'")
        return value

    @field_validator("title_zh_hant", "summary_zh_hant", "origin", "notes")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


# Fields the digital office may change through the edit form (the rest are facts of record
# that change with the shipped YAML).
EDITABLE_FIELDS: tuple[str, ...] = (
    "title_en",
    "title_zh_hant",
    "summary",
    "summary_zh_hant",
    "owner",
    "status",
    "status_as_of",
    "notes",
    "milestones",
    "sources",
)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))
