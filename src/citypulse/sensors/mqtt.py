"""MQTT intake: subscribe to ``citypulse/sensors/{device_id}/{readings|detections|observations}``
and feed each message through :class:`~citypulse.sensors.ingest.SensorIngest`.

Authentication is per message: the device's key travels in the payload's ``api_key`` field and
must belong to the device named by the topic. (Broker-level username/password would be checked
by the broker, and a subscriber never sees other clients' credentials, so it cannot tie a
message to a key; lock the broker down with its own ACLs as well.)

After each message an answer ``{"status": "accepted"|"refused", "reason"?, ...}`` is published
(QoS 0, not retained) on ``citypulse/ack/{device_id}``, outside the subscribed tree so the
subscriber never reads its own answers.

Threads: paho's network loop only enqueues (bounded queue; when full the message is refused as
``overloaded`` and counted), one worker thread does the blocking validation and store writes, so
a slow store never stalls keep-alives.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citypulse.model import now_utc
from citypulse.sensors.ingest import SensorIngest, SubmitResult
from citypulse.sensors.schema import valid_device_id

log = logging.getLogger(__name__)

TOPIC_PREFIX = "citypulse/sensors"
ACK_PREFIX = "citypulse/ack"
SUFFIXES = frozenset({"readings", "detections", "observations", "messages"})


def device_from_topic(topic: str, prefix: str = TOPIC_PREFIX) -> str | None:
    """``citypulse/sensors/{device_id}/readings`` -> the device id; None if not ours."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/")
    if len(parts) != 2 or parts[1] not in SUFFIXES or not valid_device_id(parts[0]):
        return None
    return parts[0]


class MqttSubscriber:
    """Start with :meth:`start` (non-blocking: connects in the background and reconnects by
    itself), stop with :meth:`stop`."""

    def __init__(
        self,
        ingest: SensorIngest,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        prefix: str = TOPIC_PREFIX,
        ack_prefix: str | None = ACK_PREFIX,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        qos: int = 1,
        keepalive: int = 30,
        queue_size: int = 1000,
    ) -> None:
        self.ingest = ingest
        self.host = host
        self.port = port
        self.prefix = prefix.rstrip("/")
        self.ack_prefix = ack_prefix
        self.qos = qos
        self.keepalive = keepalive
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.received = 0
        self.ignored = 0
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(queue_size)
        self._worker: threading.Thread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"citypulse-sensors-{uuid.uuid4().hex[:8]}",
            clean_session=True,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @classmethod
    def from_url(cls, ingest: SensorIngest, url: str, **kwargs: Any) -> MqttSubscriber:
        """``mqtt://[user[:password]@]host[:port]`` (the subscriber's own broker login)."""
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"expected mqtt://host[:port], got {url!r}")
        return cls(
            ingest,
            parts.hostname,
            parts.port or 1883,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            **kwargs,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is not None:
            return
        self._worker = threading.Thread(target=self._work, name="mqtt-sensors", daemon=True)
        self._worker.start()
        self.client.connect_async(self.host, self.port, self.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=10)
            self._worker = None
        self.connected.clear()
        self.subscribed.clear()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected *and* the subscription is acknowledged by the broker."""
        return self.subscribed.wait(timeout)

    def stats(self) -> dict[str, Any]:
        return {
            "broker": f"{self.host}:{self.port}",
            "connected": self.connected.is_set(),
            "received": self.received,
            "ignored_topics": self.ignored,
            "dropped_overloaded": self.dropped,
            "queued": self._queue.qsize(),
            "subscription": f"{self.prefix}/+/+",
        }

    # -- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("MQTT connect to %s:%s refused: %s", self.host, self.port, reason_code)
            return
        client.subscribe(f"{self.prefix}/+/+", qos=self.qos)
        self.connected.set()
        log.info("MQTT sensor intake subscribed on %s:%s", self.host, self.port)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        topic = message.topic
        if device_from_topic(topic, self.prefix) is None:
            self.ignored += 1
            return
        try:
            self._queue.put_nowait((topic, bytes(message.payload)))
        except queue.Full:
            self.dropped += 1
            device = device_from_topic(topic, self.prefix)
            result = SubmitResult("overloaded", "intake queue full", None, transport="mqtt")
            self.ingest.stats.count(result, now_utc())
            self._ack(device, result)

    # -- worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            topic, payload = item
            device = device_from_topic(topic, self.prefix)
            try:
                result = self.ingest.submit(payload, topic_device=device, transport="mqtt")
            except Exception:  # never let one message kill the intake
                log.exception("MQTT sensor message on %s failed", topic)
                continue
            if not result.accepted:
                log.info("MQTT message on %s refused: %s (%s)", topic, result.reason, result.detail)
            self._ack(device, result)

    def _ack(self, device: str | None, result: SubmitResult) -> None:
        if self.ack_prefix is None or device is None:
            return
        try:
            self.client.publish(
                f"{self.ack_prefix}/{device}", orjson.dumps(result.as_json()), qos=0
            )
        except Exception:
            log.exception("could not publish the MQTT answer for %s", device)
