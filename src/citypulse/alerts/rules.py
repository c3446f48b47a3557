"""Declarative alert rules (YAML), validated with pydantic and against the metric registry.

A rules file::

    version: 1
    rules:
      - id: aqhi-high                     # lowercase slug, unique
        title_en: AQHI at high health risk or above
        title_zh: 空氣質素健康指數達高健康風險或以上
        severity: high                    # info < low < moderate < high < severe
        where: {kind: aqhi-station}       # optional scope: kind, entity_prefix, entities,
                                          #   properties (entity properties to match)
        metric:
          metric: aqhi                    # must be a known metric (else the file is refused)
          op: ">="                        # > >= < <= == !=
          value: 7                        # threshold ...
          threshold_property: null        # ... or per entity, from this entity property
          for_minutes: 0                  # the condition must hold this long before firing
          clear_value: null               # hysteresis: clears when the condition against
                                          #   clear_value is false (default: value) ...
          clear_margin: null              # ... or against the threshold eased by this margin
                                          #   (per-entity thresholds: water 10 cm below)
          stale_minutes: 15               # the timer fires "for" rules only on fresh data
      - id: rainstorm
        severity: event                   # copy the triggering event's severity
        event:
          kind: weather-warning
          codes: [WRAINA, WRAINR, WRAINB] # matched on the event's properties.code
          key: code                       # one alert per code (default: per event id)
    webhooks:
      - id: ops
        url: https://ops.example.org/hooks/citypulse
        secret_env: CITYPULSE_WEBHOOK_OPS_SECRET   # or `secret:` (not in shared files!)
        min_severity: moderate
        rules: []                         # empty: every rule
    metrics: []                           # extra metric names to accept (derived metrics)

Semantics are in :mod:`citypulse.alerts.engine`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citypulse.alerts.metrics import MetricRegistry, known_metrics

SEVERITIES = ("info", "low", "moderate", "high", "severe")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
Severity = Literal["info", "low", "moderate", "high", "severe"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]

KNOWN_EVENT_KINDS = ("weather-warning", "weather-message", "traffic-news", "detection")
"""Event kinds a rule may watch. ``alert`` is deliberately absent: rules on alerts would loop."""

DEFAULT_RULES_FILE = "rules.yaml"
SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"


class RuleError(ValueError):
    """A rules file that cannot be used; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Model):
    """Which entities a metric rule watches (all given conditions must hold)."""

    kind: str | None = None
    entity_prefix: str | None = None
    entities: tuple[str, ...] = ()
    properties: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @property
    def needs_entity(self) -> bool:
        return self.kind is not None or bool(self.properties)


class MetricCondition(_Model):
    metric: str
    op: Op
    value: float | None = None
    threshold_property: str | None = None
    for_minutes: float = Field(0.0, ge=0, le=7 * 24 * 60)
    clear_value: float | None = None
    clear_margin: float | None = Field(None, ge=0)
    stale_minutes: float = Field(15.0, gt=0, le=7 * 24 * 60)

    @model_validator(mode="after")
    def _threshold(self) -> MetricCondition:
        if self.value is None and self.threshold_property is None:
            raise ValueError("a metric condition needs `value` or `threshold_property`")
        if self.clear_value is not None and self.clear_margin is not None:
            raise ValueError("give `clear_value` or `clear_margin`, not both")
        return self

    def clear_threshold(self, threshold: float) -> float:
        """The level an open alert is tested against to stay open (hysteresis)."""
        if self.clear_value is not None:
            return self.clear_value
        if self.clear_margin:
            if self.op in (">", ">="):
                return threshold - self.clear_margin
            if self.op in ("<", "<="):
                return threshold + self.clear_margin
        return threshold


class EventCondition(_Model):
    kind: str
    codes: tuple[str, ...] = ()
    properties: dict[str, str | int | float | bool] = Field(default_factory=dict)
    min_confidence: float | None = Field(None, ge=0, le=1)
    key: str | None = Field(
        None, description="Event property to de-duplicate on (default: the event id)"
    )
    clear_after_minutes: float = Field(
        30.0, ge=0, le=7 * 24 * 60,
        description="How long an alert on an instant event (a detection) stays open",
    )


class Rule(_Model):
    id: Annotated[str, Field(pattern=SLUG)]
    title_en: Annotated[str, Field(min_length=1, max_length=200)]
    title_zh: Annotated[str, Field(min_length=1, max_length=200)]
    description_en: str | None = None
    description_zh: str | None = None
    severity: Severity | Literal["event"] = "moderate"
    enabled: bool = True
    where: Scope = Field(default_factory=Scope)
    metric: MetricCondition | None = None
    event: EventCondition | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Rule:
        if (self.metric is None) == (self.event is None):
            raise ValueError("a rule needs exactly one of `metric` or `event`")
        if self.severity == "event" and self.event is None:
            raise ValueError("severity `event` only applies to event rules")
        return self

    @property
    def kind(self) -> str:
        return "metric" if self.metric is not None else "event"


class Webhook(_Model):
    id: Annotated[str, Field(pattern=SLUG)]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    secret: str | None = None
    secret_env: str | None = None
    min_severity: Severity = "info"
    rules: tuple[str, ...] = ()
    events: tuple[Literal["alert.fired", "alert.cleared"], ...] = ("alert.fired", "alert.cleared")
    timeout_s: float = Field(10.0, gt=0, le=120)
    max_attempts: int = Field(6, ge=1, le=20)

    def resolved_secret(self) -> str:
        if self.secret:
            return self.secret
        if self.secret_env:
            value = os.environ.get(self.secret_env, "")
            if value:
                return value
            raise RuleError(
                f"webhook {self.id!r}: environment variable {self.secret_env} is empty"
            )
        raise RuleError(
            f"webhook {self.id!r}: set `secret` or `secret_env` (deliveries are signed)"
        )

    def wants(self, rule_id: str, severity: str, event: str) -> bool:
        return (
            event in self.events
            and (not self.rules or rule_id in self.rules)
            and SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.min_severity]
        )


class RuleSet(_Model):
    version: Literal[1] = 1
    rules: tuple[Rule, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    metrics: tuple[str, ...] = ()

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)


def _validation_message(exc: ValidationError, source: str, doc: Any) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = list(err.get("loc", ()))
        where = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rules = doc.get("rules") if isinstance(doc, dict) else None
            rid = None
            if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
                rid = rules[loc[1]].get("id")
            where = f"rule {rid!r}" if rid else f"rule #{loc[1] + 1}"
            loc = loc[2:]
        path = ".".join(str(p) for p in loc)
        lines.append(f"{where}{': ' if where and path else ''}{path}: {err.get('msg')}")
    return f"{source}: invalid rules: " + "; ".join(lines)


def parse_rules(
    text: str, source: str = "<rules>", *, registry: MetricRegistry | None = None
) -> RuleSet:
    """Parse and validate a rules document. Raises :class:`RuleError` with a message naming
    the rule and the problem (unknown metric with suggestions, bad operator...)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: not valid YAML: {exc}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise RuleError(f"{source}: expected a mapping with `rules:`")
    try:
        ruleset = RuleSet.model_validate(doc)
    except ValidationError as exc:
        raise RuleError(_validation_message(exc, source, doc)) from exc
    check_rules(ruleset, source, registry=registry)
    return ruleset


def check_rules(
    ruleset: RuleSet, source: str = "<rules>", *, registry: MetricRegistry | None = None
) -> None:
    """Cross-checks pydantic cannot do alone: unique ids, known metrics and event kinds,
    known warning codes, webhooks naming existing rules."""
    from citypulse.feeds._hk_common import WARNING_CODES

    metrics = registry or known_metrics(ruleset.metrics)
    for name in ruleset.metrics:
        if not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
            raise RuleError(f"{source}: declared metric {name!r} is not a snake_case name")
    problems: list[str] = []
    seen: set[str] = set()
    for rule in ruleset.rules:
        if rule.id in seen:
            problems.append(f"rule {rule.id!r}: duplicate id")
        seen.add(rule.id)
        if rule.metric is not None and rule.metric.metric not in metrics:
            hint = metrics.suggest(rule.metric.metric)
            problems.append(
                f"rule {rule.id!r}: unknown metric {rule.metric.metric!r}"
                + (f" (did you mean {', '.join(hint)}?)" if hint else "")
            )
        if rule.event is not None:
            if rule.event.kind not in KNOWN_EVENT_KINDS:
                problems.append(
                    f"rule {rule.id!r}: unknown event kind {rule.event.kind!r} "
                    f"(known: {', '.join(KNOWN_EVENT_KINDS)})"
                )
            if rule.event.kind == "weather-warning":
                bad = [c for c in rule.event.codes if c not in WARNING_CODES]
                if bad:
                    problems.append(
                        f"rule {rule.id!r}: unknown HKO warning code(s) {', '.join(bad)}"
                    )
    for hook in ruleset.webhooks:
        missing = [r for r in hook.rules if r not in seen]
        if missing:
            problems.append(f"webhook {hook.id!r}: unknown rule(s) {', '.join(missing)}")
    if problems:
        raise RuleError(f"{source}: " + "; ".join(problems))


def default_rules_text() -> str:
    data = files("citypulse.alerts").joinpath("data")
    return data.joinpath(DEFAULT_RULES_FILE).read_text("utf-8")


def load_rules(
    path: Path | str | None = None,
    *,
    registry: MetricRegistry | None = None,
) -> RuleSet:
    """Rules from ``path``, or the packaged defaults when ``path`` is None."""
    if path is None:
        return parse_rules(default_rules_text(), "default rules.yaml", registry=registry)
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise RuleError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    return parse_rules(text, str(p), registry=registry)


def rules_for_data_dir(data_dir: Path) -> RuleSet:
    """``<data_dir>/alerts.yaml`` when it exists, else the packaged defaults."""
    custom = Path(data_dir) / "alerts.yaml"
    return load_rules(custom if custom.is_file() else None)


def rules_json(ruleset: RuleSet, *, with_webhooks: bool = False) -> dict[str, Any]:
    """What ``/api/v1/alerts/rules`` shows (webhook secrets and URLs never leave the server)."""
    out: dict[str, Any] = {
        "version": ruleset.version,
        "rules": [r.model_dump(mode="json") for r in ruleset.rules],
    }
    if with_webhooks:
        out["webhooks"] = [
            {"id": w.id, "min_severity": w.min_severity, "rules": list(w.rules),
             "events": list(w.events)}
            for w in ruleset.webhooks
        ]
    return out


def severities_at_least(minimum: str) -> Iterable[str]:
    rank = SEVERITY_RANK.get(minimum, 0)
    return [s for s in SEVERITIES if SEVERITY_RANK[s] >= rank]
