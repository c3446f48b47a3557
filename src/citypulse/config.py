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

    @property
    def store_url(self) -> str:
        return self.store or str(self.data_dir / "citypulse.duckdb")

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"
