"""Shared fixtures. Real payloads live in ../shared/data beside the checkout (CI always has it);
tests that need them skip with a clear reason elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CITYPULSE_SHARED_DATA", REPO.parent / "shared" / "data"))
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "feeds").is_dir():
        pytest.skip(f"real payloads not found at {SHARED} (set CITYPULSE_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def feeds_dir(shared_data: Path) -> Path:
    return shared_data / "feeds"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
