"""JSON API of the portal: /api/v1/initiatives (list, filters, one item) and /api/v1/areas,
checked against the YAML read independently; documented in OpenAPI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.blueprint.support import make_app, raw_initiatives, raw_yaml


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path_factory.mktemp("api"))) as c:
        yield c


def test_list_and_pagination(client: TestClient) -> None:
    body = client.get("/api/v1/initiatives").json()
    raw = raw_initiatives()
    assert (body["total"], body["page"], body["pages"], body["per_page"]) == (124, 1, 7, 20)
    assert [i["id"] for i in body["items"]] == [r["id"] for r in raw[:20]]
    everything = client.get("/api/v1/initiatives?per_page=200").json()["items"]
    assert [i["id"] for i in everything] == [r["id"] for r in raw]
    first = everything[0]
    assert first["title_en"] == raw[0]["title_en"] and first["title_zh_hant"] == "香港出行易"
    assert first["area_name_zh_hant"] == "智慧出行"
    assert first["url"] == "http://testserver/initiatives/mobility-01"
    assert len(first["milestones"]) == len(raw[0]["milestones"])


def test_filters(client: TestClient) -> None:
    raw = raw_initiatives()
    body = client.get("/api/v1/initiatives?area=covid-19&area=smart-village&per_page=50").json()
    assert body["total"] == sum(1 for r in raw if r["area"] in ("covid-19", "smart-village"))
    body = client.get("/api/v1/initiatives?status=ended&sort=-updated&per_page=50").json()
    assert Counter(i["status"] for i in body["items"]) == {"ended": body["total"]}
    assert client.get("/api/v1/initiatives?q=安心出行").json()["items"][0]["id"] == "covid-19-03"


def test_one_and_404(client: TestClient) -> None:
    body = client.get("/api/v1/initiatives/economy-04").json()
    assert body["title_zh_hant"] == "積金易" and body["version"] == 0 and body["history"] == []
    r = client.get("/api/v1/initiatives/economy-99")
    assert r.status_code == 404 and "economy-99" in r.json()["detail"]


def test_areas(client: TestClient) -> None:
    body = client.get("/api/v1/areas").json()
    raw = raw_initiatives()
    assert [a["id"] for a in body["items"]] == [a["id"] for a in raw_yaml()["areas"]]
    for a in body["items"]:
        assert a["progress"]["total"] == sum(1 for r in raw if r["area"] == a["id"])
    assert body["overall"]["total"] == len(raw)
    assert client.get("/api/v1/areas/people").json()["name_zh_hant"] == "智慧市民"
    assert client.get("/api/v1/areas/sports").status_code == 404


def test_openapi_documents_the_portal_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/v1/initiatives", "/api/v1/initiatives/{initiative_id}", "/api/v1/areas"):
        assert p in paths
    assert "/initiatives" not in paths  # HTML pages stay out of the API docs
