"""Load and validate the shipped Blueprint YAML (``blueprint/data``) once, at start-up.

Any problem raises :class:`BlueprintDataError` whose message names the file and the broken
entry (its ``id`` when it has one, else its position) and the field, so a bad edit to the YAML
stops the server with a message a maintainer can act on, instead of a half-working portal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from citypulse.blueprint.models import Area, HeadlineFigure, Initiative
from citypulse.blueprint.registry import AREA_IDS, area_info

DATA_DIR = Path(__file__).parent / "data"
INITIATIVES_FILE = DATA_DIR / "initiatives.yaml"
FIGURES_FILE = DATA_DIR / "figures.yaml"

M = TypeVar("M", bound=BaseModel)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BlueprintDataError(ValueError):
    """The Blueprint YAML is broken; the message says where."""


@dataclass(frozen=True, slots=True)
class BlueprintData:
    """The shipped data, validated. ``meta`` keeps the YAML's notes (coverage, field notes)."""

    meta: Mapping[str, Any]
    areas: tuple[Area, ...]
    initiatives: tuple[Initiative, ...]
    figures: tuple[HeadlineFigure, ...]
    figures_meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def coverage_note(self) -> str:
        return str(self.meta.get("coverage_note") or "")

    def completeness(self, area_id: str) -> str | None:
        """Coverage note for one area (the YAML spells ``covid-19`` as ``covid_19`` there)."""
        notes = self.meta.get("completeness_by_area") or {}
        value = notes.get(area_id) or notes.get(area_id.replace("-", "_"))
        return str(value) if value else None

    def field_note(self, name: str) -> str | None:
        value = (self.meta.get("field_notes") or {}).get(name)
        return str(value) if value else None


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BlueprintDataError(f"{path.name}: cannot read {path}: {exc.strerror}") from exc
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader (C if available)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise BlueprintDataError(f"{path.name}:{where}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise BlueprintDataError(f"{path.name}: invalid YAML: {exc}") from exc


def _entry_name(kind: str, index: int, raw: Any) -> str:
    ident = raw.get("id") if isinstance(raw, Mapping) else None
    if ident is None and isinstance(raw, Mapping):
        ident = raw.get("name")
    return f"{kind} #{index + 1} ({ident!r})" if ident else f"{kind} #{index + 1}"


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(entry)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _validate_list(file: str, kind: str, raw: Any, model: type[M]) -> list[M]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise BlueprintDataError(f"{file}: '{kind}s' must be a list")
    out: list[M] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise BlueprintDataError(f"{file}: {_entry_name(kind, i, item)}: not a mapping")
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            raise BlueprintDataError(
                f"{file}: {_entry_name(kind, i, item)}: {_format_errors(exc)}"
            ) from exc
    return out


def parse_initiatives_document(doc: Any, file: str = "initiatives.yaml") -> BlueprintData:
    """Validate an already-parsed initiatives document (figures left empty)."""
    if not isinstance(doc, Mapping):
        raise BlueprintDataError(f"{file}: top level must be a mapping with meta/areas/initiatives")
    for key in ("meta", "areas", "initiatives"):
        if key not in doc:
            raise BlueprintDataError(f"{file}: missing top-level key '{key}'")
    areas = _validate_list(file, "area", doc["areas"], Area)
    seen_areas = [a.id for a in areas]
    if seen_areas != list(AREA_IDS):
        raise BlueprintDataError(
            f"{file}: areas must be {', '.join(AREA_IDS)} in that order, "
            f"got {', '.join(seen_areas)}"
        )
    for a in areas:
        info = area_info(a.id)
        assert info is not None
        if (a.name_en, a.name_zh_hant, a.kind) != (info.name_en, info.name_zh, info.kind):
            raise BlueprintDataError(
                f"{file}: area {a.id!r}: names/kind differ from the registry "
                f"({info.name_en} / {info.name_zh} / {info.kind})"
            )
    initiatives = _validate_list(file, "initiative", doc["initiatives"], Initiative)
    counts = Counter(i.id for i in initiatives)
    for index, item in enumerate(initiatives):
        name = _entry_name("initiative", index, {"id": item.id})
        if counts[item.id] > 1:
            raise BlueprintDataError(f"{file}: {name}: duplicate id")
        if item.area not in AREA_IDS:
            raise BlueprintDataError(
                f"{file}: {name}: area: unknown area {item.area!r} (expected one of "
                f"{', '.join(AREA_IDS)})"
            )
        if not item.id.startswith(item.area + "-"):
            raise BlueprintDataError(f"{file}: {name}: id must start with its area '{item.area}-'")
    meta = doc["meta"] if isinstance(doc["meta"], Mapping) else {}
    return BlueprintData(meta=meta, areas=tuple(areas), initiatives=tuple(initiatives), figures=())


def load_blueprint(
    initiatives_path: Path = INITIATIVES_FILE, figures_path: Path = FIGURES_FILE
) -> BlueprintData:
    """Read and validate both files; raises :class:`BlueprintDataError` naming the entry."""
    data = parse_initiatives_document(_read_yaml(initiatives_path), initiatives_path.name)
    fdoc = _read_yaml(figures_path)
    if not isinstance(fdoc, Mapping) or "figures" not in fdoc:
        raise BlueprintDataError(f"{figures_path.name}: missing top-level key 'figures'")
    figures = _validate_list(figures_path.name, "figure", fdoc["figures"], HeadlineFigure)
    fmeta = fdoc.get("meta") if isinstance(fdoc.get("meta"), Mapping) else {}
    return BlueprintData(
        meta=data.meta,
        areas=data.areas,
        initiatives=data.initiatives,
        figures=tuple(figures),
        figures_meta=fmeta or {},
    )


@cache
def shipped_blueprint() -> BlueprintData:
    """The packaged data, loaded once per process."""
    return load_blueprint()
