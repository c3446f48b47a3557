"""Hatchling build hook: build the front-end vendor bundle from the pinned npm lockfile.

The page assets (Leaflet, uPlot, htmx) come from npm with exact versions in
``frontend/package-lock.json``; nothing is fetched by the browser from a CDN. When
``src/citypulse/web/static/vendor/`` is missing, run ``npm ci --ignore-scripts`` and copy the
files listed in ``frontend/vendor.json`` into it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def build_vendor(root: Path, force: bool = False) -> None:
    frontend = root / "frontend"
    manifest = frontend / "vendor.json"
    vendor = root / "src" / "citypulse" / "web" / "static" / "vendor"
    if not manifest.exists():
        return
    files: dict[str, str] = json.loads(manifest.read_text())
    if not force and all((vendor / dest).exists() for dest in files.values()):
        return
    if not (frontend / "node_modules").exists() or force:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is required to build citypulse's front-end assets")
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                       cwd=frontend, check=True)
    for src, dest in files.items():
        target = vendor / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(frontend / "node_modules" / src, target)


class VendorBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        build_vendor(Path(self.root))
