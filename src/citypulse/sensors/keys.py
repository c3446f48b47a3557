"""Per-device API keys and the device registry, in ``<data_dir>/sensors.sqlite``.

Keys are 256-bit random tokens (``cpk_`` + 43 URL-safe characters), shown once when issued and
stored only as their SHA-256. A slow password hash (argon2) protects *guessable* secrets; a
random 256-bit key cannot be brute-forced from its SHA-256, and hashing it fast lets every
message be authenticated by one indexed lookup instead of ~50 ms of argon2 per message.

The registry is also where a device's village, type and position come from: over HTTP and MQTT
it is authoritative (a device cannot move itself to another village by saying so).

SQLite (not the time-series store): the registry is small, relational and must be usable by the
CLI while ``citypulse serve`` owns the DuckDB file.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from citypulse.sensors.schema import SLUG_PATTERN, DeviceInfo, valid_device_id

KEY_PREFIX = "cpk_"
DB_NAME = "sensors.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_hint TEXT NOT NULL,
    sensor_type TEXT NOT NULL,
    village TEXT,
    village_zh TEXT,
    name_en TEXT,
    name_zh TEXT,
    lat REAL,
    lon REAL,
    district TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""


class AuthError(Exception):
    """Authentication refused; ``reason`` is ``missing-key``, ``bad-key`` or ``revoked-key``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DeviceExistsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    sensor_type: str
    key_hint: str
    created_at: datetime
    revoked_at: datetime | None = None
    village: str | None = None
    village_zh: str | None = None
    name_en: str | None = None
    name_zh: str | None = None
    lat: float | None = None
    lon: float | None = None
    district: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def info(self) -> DeviceInfo:
        """The device block the ingest writes into the canonical batch."""
        return DeviceInfo(
            sensor_type=self.sensor_type,
            village=self.village,
            village_zh=self.village_zh,
            name_en=self.name_en,
            name_zh=self.name_zh,
            lat=self.lat,
            lon=self.lon,
            district=self.district,
            properties=self.properties,
        )

    def public(self) -> dict[str, Any]:
        """Everything but the key hash (for listings)."""
        return {
            "device_id": self.device_id,
            "sensor_type": self.sensor_type,
            "village": self.village,
            "village_zh": self.village_zh,
            "name_en": self.name_en,
            "name_zh": self.name_zh,
            "lat": self.lat,
            "lon": self.lon,
            "district": self.district,
            "properties": self.properties,
            "key_hint": self.key_hint,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.active,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


_COLUMNS = (
    "device_id, sensor_type, key_hint, created_at, revoked_at, village, village_zh, name_en, "
    "name_zh, lat, lon, district, properties"
)


def _device(row: tuple[Any, ...]) -> Device:
    created = _dt(row[3])
    assert created is not None
    return Device(
        device_id=row[0],
        sensor_type=row[1],
        key_hint=row[2],
        created_at=created,
        revoked_at=_dt(row[4]),
        village=row[5],
        village_zh=row[6],
        name_en=row[7],
        name_zh=row[8],
        lat=row[9],
        lon=row[10],
        district=row[11],
        properties=orjson.loads(row[12] or "{}"),
    )


class KeyStore:
    """The device registry; thread-safe (one connection, one lock: calls are sub-millisecond)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> KeyStore:
        return cls(Path(data_dir) / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_device(
        self,
        device_id: str,
        *,
        sensor_type: str = "other",
        village: str | None = None,
        village_zh: str | None = None,
        name_en: str | None = None,
        name_zh: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        district: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> str:
        """Register a device and return its key (the only time the key is visible)."""
        if not valid_device_id(device_id):
            raise ValueError(f"invalid device id {device_id!r} (lowercase letters, digits, . _ -)")
        if not re.match(SLUG_PATTERN, sensor_type):
            raise ValueError(f"invalid sensor type {sensor_type!r}")
        # Validated like the device block of a trusted batch.
        info = DeviceInfo(
            sensor_type=sensor_type, village=village, village_zh=village_zh, name_en=name_en,
            name_zh=name_zh, lat=lat, lon=lon, district=district, properties=properties or {},
        )
        key = new_key()
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO devices ({_COLUMNS}, key_hash) "
                    "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        device_id, info.sensor_type, key[:8], datetime.now(UTC).isoformat(),
                        info.village, info.village_zh, info.name_en, info.name_zh, info.lat,
                        info.lon, info.district, orjson.dumps(info.properties).decode(),
                        hash_key(key),
                    ],
                )
            except sqlite3.IntegrityError as exc:
                raise DeviceExistsError(f"device {device_id!r} already exists") from exc
        return key

    def rotate_key(self, device_id: str) -> str:
        """Issue a new key (the old one stops working at once); un-revokes the device."""
        key = new_key()
        with self._lock:
            cur = self._db.execute(
                "UPDATE devices SET key_hash = ?, key_hint = ?, revoked_at = NULL "
                "WHERE device_id = ?",
                [hash_key(key), key[:8], device_id],
            )
        if cur.rowcount == 0:
            raise LookupError(f"unknown device {device_id!r}")
        return key

    def revoke(self, device_id: str) -> bool:
        """Revoke a device's key; False if unknown or already revoked."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE devices SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL",
                [datetime.now(UTC).isoformat(), device_id],
            )
        return cur.rowcount > 0

    def device(self, device_id: str) -> Device | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM devices WHERE device_id = ?", [device_id]
            ).fetchone()
        return _device(row) if row else None

    def devices(self) -> list[Device]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM devices ORDER BY device_id").fetchall()
        return [_device(r) for r in rows]

    def authenticate(self, key: str | None) -> Device:
        """The device a key belongs to; raises :class:`AuthError` with a stable reason."""
        if not key:
            raise AuthError("missing-key", "no API key given")
        digest = hash_key(key)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS}, key_hash FROM devices WHERE key_hash = ?", [digest]
            ).fetchone()
        # The lookup is by hash; the constant-time compare is belt and braces.
        if row is None or not hmac.compare_digest(row[-1], digest):
            raise AuthError("bad-key", "unknown API key")
        device = _device(row[:-1])
        if not device.active:
            raise AuthError("revoked-key", f"the key of {device.device_id} was revoked")
        return device
