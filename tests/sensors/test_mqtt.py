"""MQTT end to end against a real mosquitto broker on 127.0.0.1 (Debian package ``mosquitto``,
started here on a free port with a generated config): accepted messages reach the store and
the alert engine, refused ones are answered on ``citypulse/ack/{device}`` and counted."""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from citypulse.alerts.engine import ALERT_KIND
from citypulse.sensors.mqtt import MqttSubscriber, device_from_topic

from .conftest import NOW, Rig

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install -y mosquitto)")
    port = free_port()
    folder = tmp_path_factory.mktemp("mosquitto")
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\nlog_type error\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=(folder / "log.txt").open("wb"))
    try:
        deadline = time.monotonic() + 20
        while True:  # readiness: the port accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "log.txt").read_text(errors="replace")
                    pytest.fail(f"mosquitto did not start: {log}")
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Device:
    """A device-side MQTT client that also listens to its answers."""

    def __init__(self, host: str, port: int, device_id: str) -> None:
        self.device_id = device_id
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{device_id}")
        self.client.on_message = lambda c, u, m: self.answers.put(orjson.loads(m.payload))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            f"citypulse/ack/{device_id}", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(20), "device could not subscribe to its answers"

    def send(self, body: dict[str, Any], topic: str | None = None) -> dict[str, Any]:
        info = self.client.publish(topic or f"citypulse/sensors/{self.device_id}/readings",
                                   orjson.dumps(body), qos=1)
        info.wait_for_publish(10)
        return self.answers.get(timeout=20)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscriber(broker: tuple[str, int], rig: Rig) -> Iterator[MqttSubscriber]:
    sub = MqttSubscriber(rig.ingest, *broker)
    sub.start()
    assert sub.wait_connected(20), "subscriber could not connect to the broker"
    yield sub
    sub.stop()


@pytest.fixture
def flood_device(broker: tuple[str, int], subscriber: MqttSubscriber) -> Iterator[Device]:
    dev = Device(*broker, "tai-o-flood-01")
    yield dev
    dev.close()


def test_from_url(rig: Rig) -> None:
    sub = MqttSubscriber.from_url(rig.ingest, "mqtt://ingest:p%40ss@broker.local:1884")
    assert (sub.host, sub.port) == ("broker.local", 1884)
    assert MqttSubscriber.from_url(rig.ingest, "mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError, match="mqtt://"):
        MqttSubscriber.from_url(rig.ingest, "http://127.0.0.1")


def test_topic_parsing() -> None:
    assert device_from_topic("citypulse/sensors/tai-o-flood-01/readings") == "tai-o-flood-01"
    assert device_from_topic("citypulse/sensors/x/observations") == "x"
    assert device_from_topic("citypulse/sensors/x/other") is None
    assert device_from_topic("citypulse/sensors/X Y/readings") is None
    assert device_from_topic("citypulse/ack/x") is None
    assert device_from_topic("citypulse/sensors/a/b/readings") is None


def test_end_to_end(flood_device: Device, subscriber: MqttSubscriber, rig: Rig) -> None:
    body = {"api_key": rig.key["flood"], "ts": "2025-08-08T10:00:00+08:00",
            "readings": [{"metric": "water_level_cm", "value": 145.5}]}
    answer = flood_device.send(body)
    assert answer == {"status": "accepted", "device_id": "tai-o-flood-01", "readings": 1,
                      "detections": 0, "duplicates": 0}
    (latest,) = rig.store.latest("water_level_cm")
    assert (latest.value, latest.ts) == (145.5, NOW)
    alerts = rig.store.events(NOW.replace(year=2024), NOW.replace(year=2026), kind=ALERT_KIND)
    assert [a.properties["rule_id"] for a in alerts] == ["flood-level"]

    # Refusals: wrong key, duplicate, another device's topic, future time, bad JSON.
    assert flood_device.send({**body, "api_key": "cpk_wrong"})["reason"] == "bad-key"
    assert flood_device.send(body)["reason"] == "duplicate"
    no_key = {k: v for k, v in body.items() if k != "api_key"}
    assert flood_device.send(no_key)["reason"] == "missing-key"
    late = {**body, "ts": "2025-08-08T11:00:00+08:00"}
    assert flood_device.send(late)["reason"] == "future-timestamp"
    stolen = {**body, "ts": "2025-08-08T09:59:00+08:00", "api_key": rig.key["cam"]}
    # The camera's key on the flood gauge's topic: refused, answered on the gauge's topic.
    assert flood_device.send(stolen)["reason"] == "device-mismatch"
    flood_device.client.publish("citypulse/sensors/tai-o-flood-01/readings", b"{oops", qos=1)
    assert flood_device.answers.get(timeout=20)["reason"] == "bad-json"

    stats = rig.ingest.stats.snapshot()
    assert stats["by_transport"] == {"mqtt:accepted": 1, "mqtt:refused": 6}
    assert stats["refused_by_reason"] == {"bad-json": 1, "bad-key": 1, "device-mismatch": 1,
                                          "duplicate": 1, "future-timestamp": 1,
                                          "missing-key": 1}
    mq = subscriber.stats()
    assert mq["connected"] and mq["received"] == 7 and mq["dropped_overloaded"] == 0


def test_sensorthings_and_ignored_topics(flood_device: Device, subscriber: MqttSubscriber,
                                         rig: Rig) -> None:
    obs = {"api_key": rig.key["flood"], "phenomenonTime": "2025-08-08T09:50:00+08:00",
           "result": 61, "Datastream": {"@iot.id": "tai-o-flood-01/battery_pct"}}
    answer = flood_device.send(obs, topic="citypulse/sensors/tai-o-flood-01/observations")
    assert answer["status"] == "accepted"
    flood_device.client.publish("citypulse/sensors/tai-o-flood-01/firmware", b"x", qos=1)
    # Nothing answers an ignored topic; a following message is still processed.
    again = {**obs, "phenomenonTime": "2025-08-08T09:55:00+08:00"}
    assert flood_device.send(again, topic="citypulse/sensors/tai-o-flood-01/observations")[
        "status"] == "accepted"
    assert subscriber.stats()["ignored_topics"] == 1
    points = rig.store.series("sensor:tai-o-flood-01", "battery_pct", NOW - timedelta(hours=1),
                              NOW, timedelta(minutes=1))
    assert [p.avg for p in points] == [61, 61]


def test_stats_endpoint_reports_mqtt(subscriber: MqttSubscriber, rig: Rig) -> None:
    from fastapi.testclient import TestClient

    from citypulse.config import Settings
    from citypulse.web.app import create_app

    app = create_app(Settings(data_dir=rig.data_dir), rig.store, rig.bus)
    app.state.sensor_ingest = rig.ingest
    app.state.mqtt_subscriber = subscriber
    with TestClient(app) as c:
        mq = c.get("/api/v1/sensors/stats").json()["mqtt"]
    assert mq["connected"] is True and mq["subscription"] == "citypulse/sensors/+/+"
