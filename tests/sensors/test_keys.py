"""Per-device API keys: issued once, stored hashed, revocable, rotatable; and the CLI."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citypulse.sensors.cli import sensors_app
from citypulse.sensors.keys import AuthError, DeviceExistsError, KeyStore


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore.for_data_dir(tmp_path)


def test_keys_are_hashed_and_authenticate(keys: KeyStore, tmp_path: Path) -> None:
    key = keys.add_device("tai-o-flood-01", sensor_type="flood", village="Tai O",
                          village_zh="大澳", lat=22.25, lon=113.86,
                          properties={"alert_level_cm": 140})
    assert key.startswith("cpk_") and len(key) > 40
    device = keys.authenticate(key)
    assert device.device_id == "tai-o-flood-01" and device.properties == {"alert_level_cm": 140}
    assert device.info().village_zh == "大澳"
    raw = (tmp_path / "sensors.sqlite").read_bytes()
    assert key.encode() not in raw
    with sqlite3.connect(tmp_path / "sensors.sqlite") as db:
        (stored,) = db.execute("SELECT key_hash FROM devices").fetchone()
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    assert "key_hash" not in device.public()


def test_refusals(keys: KeyStore) -> None:
    key = keys.add_device("cam-1", sensor_type="dumping")
    for bad, reason in ((None, "missing-key"), ("", "missing-key"), (key + "x", "bad-key"),
                        ("cpk_guess", "bad-key")):
        with pytest.raises(AuthError) as err:
            keys.authenticate(bad)
        assert err.value.reason == reason
    assert keys.revoke("cam-1") and not keys.revoke("cam-1") and not keys.revoke("nope")
    with pytest.raises(AuthError) as err:
        keys.authenticate(key)
    assert err.value.reason == "revoked-key"
    new = keys.rotate_key("cam-1")
    assert keys.authenticate(new).device_id == "cam-1"
    with pytest.raises(AuthError):
        keys.authenticate(key)
    with pytest.raises(LookupError):
        keys.rotate_key("nope")


def test_bad_registrations(keys: KeyStore) -> None:
    keys.add_device("dev-1")
    with pytest.raises(DeviceExistsError):
        keys.add_device("dev-1")
    with pytest.raises(ValueError, match="invalid device id"):
        keys.add_device("Dev 1")
    with pytest.raises(ValueError, match="invalid sensor type"):
        keys.add_device("dev-2", sensor_type="Flood!")
    with pytest.raises(ValueError):
        keys.add_device("dev-3", lat=123.0)
    assert [d.device_id for d in keys.devices()] == ["dev-1"]


def test_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    out = runner.invoke(sensors_app, ["add-device", "pui-o-flood-01", "--type", "flood",
                                      "--village", "Pui O", "--prop", "alert_level_cm=120",
                                      *args])
    assert out.exit_code == 0, out.output
    key = out.output.strip().splitlines()[-1]
    assert KeyStore.for_data_dir(tmp_path).authenticate(key).properties == {"alert_level_cm": 120}
    again = runner.invoke(sensors_app, ["add-device", "pui-o-flood-01", *args])
    assert again.exit_code == 2 and "already exists" in again.output
    listed = runner.invoke(sensors_app, ["list", "--json", *args])
    (device,) = json.loads(listed.output)
    assert device["village"] == "Pui O" and device["active"] and key not in listed.output
    assert runner.invoke(sensors_app, ["revoke", "pui-o-flood-01", *args]).exit_code == 0
    assert runner.invoke(sensors_app, ["revoke", "pui-o-flood-01", *args]).exit_code == 1
    assert "revoked" in runner.invoke(sensors_app, ["list", *args]).output
    rotated = runner.invoke(sensors_app, ["rotate-key", "pui-o-flood-01", *args])
    assert rotated.exit_code == 0
    assert KeyStore.for_data_dir(tmp_path).authenticate(rotated.output.strip()).active
