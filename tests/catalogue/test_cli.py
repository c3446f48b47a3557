"""``citypulse catalogue ...`` commands (the Typer sub-app the main CLI mounts)."""

from __future__ import annotations

from pathlib import Path

from ckan_replay import ReplayCKAN
from typer.testing import CliRunner

from citypulse.catalogue.cli import catalogue_app
from citypulse.catalogue.service import catalogue_path

runner = CliRunner()


def test_harvest_sources_search(tmp_path: Path, replay: tuple[ReplayCKAN, str]) -> None:
    url = replay[1]
    result = runner.invoke(catalogue_app, ["harvest", f"{url}/en-data", "--data-dir",
                                           str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert catalogue_path(tmp_path).is_file()
    result = runner.invoke(catalogue_app, ["sources", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and "status=ok" in result.output and "mode=list" in result.output
    result = runner.invoke(catalogue_app, ["search", "weather", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "hk-hko-rss-current-weather-report" in result.output
    result = runner.invoke(catalogue_app, ["dcat", "--data-dir", str(tmp_path), "--format",
                                           "turtle"])
    assert result.exit_code == 0 and "dcat:Dataset" in result.output


def test_harvest_failure_exits_non_zero_and_keeps_data(
    tmp_path: Path, replay: tuple[ReplayCKAN, str]
) -> None:
    server, url = replay
    server.garbage.add(("group_list", ""))
    result = runner.invoke(catalogue_app, ["harvest", f"{url}/en-data", "--data-dir",
                                           str(tmp_path)])
    assert result.exit_code == 1
    assert "stopped" in result.output
    bad = runner.invoke(catalogue_app, ["harvest", "not a url", "--data-dir", str(tmp_path)])
    assert bad.exit_code != 0
