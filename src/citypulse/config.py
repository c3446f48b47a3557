"""Settings from the environment (``CITYPULSE_*``) and CLI flags, in one pydantic model."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path.cwd() / "citypulse-data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYPULSE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    # A DuckDB file path or a postgresql:// URL. Empty: <data_dir>/citypulse.duckdb.
    store: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    demo: bool = False
    # Feed ids to poll; empty means every feed enabled by default.
    feeds: list[str] = Field(default_factory=list)
    # Per-feed poll interval overrides in seconds, e.g. {"td-speedmap": 60}.
    intervals: dict[str, int] = Field(default_factory=dict)
    # Simulator speed-up: simulated seconds per real second in --demo mode.
    demo_speed: float = 1.0
    demo_interval_s: float = 5.0
    http_timeout_s: float = 20.0
    max_payload_bytes: int = 50 * 1024 * 1024
    languages: list[str] = Field(default_factory=lambda: ["en", "zh-Hant"])
    secret_key: str = ""
    # Secure cookies: None = only when the request came over HTTPS; True behind a TLS proxy.
    cookie_secure: bool | None = None
    # MQTT broker for Smart Village sensors, mqtt://[user:pass@]host:port; empty = off.
    mqtt_url: str = ""
    # --- web hardening (web/security.py) ---
    # Request bodies over this many bytes are refused with 413; paths starting with one of
    # ``upload_paths`` may send up to ``max_upload_bytes``.
    max_request_bytes: int = 1024 * 1024
    max_upload_bytes: int = 32 * 1024 * 1024
    upload_paths: list[str] = Field(default_factory=list)
    # Per-client limits on writes (POST/PUT/PATCH/DELETE), "N/second|minute|hour" by path
    # prefix; the longest matching prefix applies, "0/minute" turns a prefix's limit off.
    write_rate_limits: dict[str, str] = Field(
        default_factory=lambda: {
            "/": "120/minute",
            "/login": "20/minute",
            "/api/v1/sensors/": "6000/minute",
        }
    )
    # Strict-Transport-Security max-age in seconds; 0 = header not sent (set it only when the
    # site is served over HTTPS, e.g. behind a TLS-terminating proxy).
    hsts_max_age: int = 0
    # --- ingest ---
    # Feed URL overrides by feed id (a mirror, a caching proxy, a local test server).
    feed_urls: dict[str, str] = Field(default_factory=dict)
    # Longest random delay before a feed's first poll (spreads a restart's requests).
    first_poll_max_s: float = 10.0

    @property
    def store_url(self) -> str:
        return self.store or str(self.data_dir / "citypulse.duckdb")

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"
