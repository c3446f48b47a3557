"""Loading rules: the shipped defaults are valid, and every kind of bad rule is refused at load
with a message naming the rule and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from citypulse.alerts.metrics import known_metrics, register_metric
from citypulse.alerts.rules import (
    RuleError,
    RuleSet,
    default_rules_text,
    load_rules,
    parse_rules,
    rules_for_data_dir,
    rules_json,
)


def one_rule(**fields: object) -> str:
    rule = {"id": "r1", "title_en": "R", "title_zh": "規", **fields}
    return yaml.safe_dump({"rules": [rule]})


METRIC_OK = {"metric": "aqhi", "op": ">=", "value": 7}


def test_default_rules_cover_the_issue(rules: RuleSet) -> None:
    doc = yaml.safe_load(default_rules_text())
    assert [r.id for r in rules.rules] == [r["id"] for r in doc["rules"]]
    by_id = {r.id: r for r in rules.rules}
    aqhi = by_id["aqhi-high"].metric
    assert aqhi is not None and (aqhi.metric, aqhi.op, aqhi.value) == ("aqhi", ">=", 7)
    rain = by_id["rainstorm-warning"].event
    assert rain is not None and set(rain.codes) == {"WRAINA", "WRAINR", "WRAINB"}
    tc = by_id["tropical-cyclone-8"].event
    assert tc is not None and set(tc.codes) == {"TC8NE", "TC8SE", "TC8NW", "TC8SW", "TC9", "TC10"}
    slow = by_id["road-link-slow"].metric
    assert slow is not None and (slow.metric, slow.op, slow.value, slow.for_minutes) == (
        "speed_kmh", "<", 15, 10
    )
    flood = by_id["flood-level"].metric
    assert flood is not None and flood.metric == "water_level_cm" and flood.op == ">"
    assert all(r.title_zh and r.title_en for r in rules.rules)


def test_unknown_metric_is_refused_with_a_suggestion() -> None:
    text = one_rule(metric={"metric": "aqi", "op": ">=", "value": 7})
    with pytest.raises(RuleError) as err:
        parse_rules(text, "mine.yaml")
    message = str(err.value)
    assert "mine.yaml" in message and "rule 'r1'" in message
    assert "unknown metric 'aqi'" in message and "did you mean aqhi" in message


def test_unknown_metric_without_close_match() -> None:
    with pytest.raises(RuleError, match=r"unknown metric 'banana_split'$"):
        parse_rules(one_rule(metric={"metric": "banana_split", "op": ">", "value": 1}))


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"metric": {"metric": "aqhi", "op": "=>", "value": 7}}, "metric.op"),
        ({"metric": {"metric": "aqhi", "op": ">"}}, "needs `value` or `threshold_property`"),
        ({}, "exactly one of `metric` or `event`"),
        ({"metric": METRIC_OK, "event": {"kind": "detection"}}, "exactly one"),
        ({"metric": METRIC_OK, "severity": "critical"}, "severity"),
        ({"metric": METRIC_OK, "severity": "event"}, "only applies to event rules"),
        ({"metric": {**METRIC_OK, "for_minutes": -1}}, "for_minutes"),
        ({"metric": {**METRIC_OK, "clear_value": 5, "clear_margin": 1}}, "not both"),
        ({"metric": METRIC_OK, "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"event": {"kind": "alert"}}, "unknown event kind 'alert'"),
        ({"event": {"kind": "weather-warning", "codes": ["WRAINX"]}}, "unknown HKO warning"),
    ],
)
def test_bad_rules_are_refused(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(RuleError) as err:
        parse_rules(one_rule(**fields))
    assert needle in str(err.value)


def test_bad_documents() -> None:
    with pytest.raises(RuleError, match="not valid YAML"):
        parse_rules("rules: [")
    with pytest.raises(RuleError, match="expected a mapping"):
        parse_rules("- a\n- b\n")
    with pytest.raises(RuleError, match="duplicate id"):
        doc = {"rules": [{"id": "x", "title_en": "a", "title_zh": "b", "metric": METRIC_OK}] * 2}
        parse_rules(yaml.safe_dump(doc))
    with pytest.raises(RuleError, match=r"rule 'bad id'|rule #1"):
        parse_rules(yaml.safe_dump({"rules": [{"id": "bad id", "title_en": "a",
                                                "title_zh": "b", "metric": METRIC_OK}]}))
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(Path("/nonexistent/alerts.yaml"))


def test_webhooks_are_checked() -> None:
    base = yaml.safe_load(one_rule(metric=METRIC_OK))
    base["webhooks"] = [{"id": "ops", "url": "http://127.0.0.1:9/x", "secret": "s",
                         "rules": ["nope"]}]
    with pytest.raises(RuleError, match="webhook 'ops': unknown rule"):
        parse_rules(yaml.safe_dump(base))
    base["webhooks"] = [{"id": "ops", "url": "ftp://x", "secret": "s"}]
    with pytest.raises(RuleError, match="url"):
        parse_rules(yaml.safe_dump(base))
    base["webhooks"] = [{"id": "ops", "url": "https://example.org/h", "secret_env": "NO_SUCH_V"}]
    rs = parse_rules(yaml.safe_dump(base))
    with pytest.raises(RuleError, match="NO_SUCH_V is empty"):
        rs.webhooks[0].resolved_secret()
    assert "secret" not in str(rules_json(rs, with_webhooks=True))
    assert "example.org" not in str(rules_json(rs, with_webhooks=True))


def test_declared_and_registered_metrics_are_accepted() -> None:
    doc = yaml.safe_load(one_rule(metric={"metric": "congestion_index", "op": ">", "value": 2}))
    with pytest.raises(RuleError):
        parse_rules(yaml.safe_dump(doc))
    doc["metrics"] = ["congestion_index"]
    assert parse_rules(yaml.safe_dump(doc)).rules[0].metric is not None
    register_metric("anomaly_score_test", "z", ("road-link",))
    assert "anomaly_score_test" in known_metrics()
    parse_rules(one_rule(metric={"metric": "anomaly_score_test", "op": ">", "value": 3}))


def test_metric_patterns_and_sensor_metrics() -> None:
    registry = known_metrics()
    for name in ("vacancy_private_car", "vacancy_ev_private_car", "vacancy_lgv_daily",
                 "water_level_cm", "battery_pct", "speed_kmh", "new_cases"):
        assert name in registry, name
    assert "vacancy_spaceship" not in registry


def test_data_dir_file_replaces_the_defaults(tmp_path: Path) -> None:
    assert [r.id for r in rules_for_data_dir(tmp_path).rules] == [
        r.id for r in load_rules().rules
    ]
    (tmp_path / "alerts.yaml").write_text(one_rule(metric=METRIC_OK), "utf-8")
    assert [r.id for r in rules_for_data_dir(tmp_path).rules] == ["r1"]
    (tmp_path / "alerts.yaml").write_text(one_rule(metric={**METRIC_OK, "metric": "aqhl"}))
    with pytest.raises(RuleError, match=r"alerts\.yaml.*did you mean aqhi"):
        rules_for_data_dir(tmp_path)
