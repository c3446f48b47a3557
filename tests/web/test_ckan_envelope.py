"""CKAN's wire format in detail: envelope, HTTP status and ``__type`` of every error, GET and
POST (JSON, form, JSON-as-form-key), limits and defaults of package_search."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from citypulse.catalogue.service import Catalogue
from citypulse.config import Settings
from citypulse.web.app import create_app

N = 1200


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("envelope")
    cat = Catalogue(tmp / "catalogue.sqlite", sync_feeds=False)
    cat.db.upsert_packages(
        [{"name": f"ds-{i:04d}", "title": f"Dataset {i}", "tags": [{"name": f"t{i % 60}"}],
          "organization": {"name": f"org-{i % 3}", "title": f"Org {i % 3}"},
          "resources": [{"url": f"https://x.test/{i}.csv", "format": "CSV"}]}
         for i in range(N)], source="t")
    app = create_app(Settings(data_dir=tmp), store=object())  # type: ignore[arg-type]
    app.state.catalogue = cat
    with TestClient(app) as c:
        yield c
    cat.close()


def test_success_envelope(client: TestClient) -> None:
    r = client.get("/api/3/action/package_list", params={"limit": 2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"help", "success", "result"}
    assert body["success"] is True and body["result"] == ["ds-0000", "ds-0001"]
    assert body["help"].endswith("/api/3/action/help_show?name=package_list")
    assert client.get("/api/action/package_list", params={"limit": 1}).json()["result"] == [
        "ds-0000"]
    assert client.get("/api/3").json() == {"version": 3}
    help_text = client.get("/api/3/action/help_show", params={"name": "package_search"})
    assert "search" in help_text.json()["result"].lower()


@pytest.mark.parametrize(
    ("params", "status", "etype", "field"),
    [
        ({"rows": "-1"}, 409, "Validation Error", "rows"),
        ({"rows": "ten"}, 409, "Validation Error", "rows"),
        ({"start": "-5"}, 409, "Validation Error", "start"),
        ({"facet.limit": "x"}, 409, "Validation Error", "facet.limit"),
        ({"facet.field": "[not json"}, 409, "Validation Error", "facet.field"),
        ({"sort": "name sideways"}, 400, "Search Query Error", None),
        ({"sort": "bogus asc"}, 400, "Search Query Error", None),
        ({"fq": 'title:"open'}, 400, "Search Query Error", None),
        ({"fq": "nosuchfield:1"}, 400, "Search Query Error", None),
        ({"q": "(a OR b"}, 400, "Search Query Error", None),
        ({"frobnicate": "1"}, 400, "Search Query Error", None),
    ],
)
def test_package_search_errors(client: TestClient, params: dict[str, str], status: int,
                               etype: str, field: str | None) -> None:
    r = client.get("/api/3/action/package_search", params=params)
    assert r.status_code == status
    body = r.json()
    assert body["success"] is False and "result" not in body
    assert body["error"]["__type"] == etype
    if field:
        assert isinstance(body["error"][field], list)
    else:
        assert body["error"]["message"].startswith("Search Query is invalid: ")


def test_not_found_and_authorization(client: TestClient) -> None:
    r = client.get("/api/3/action/package_show", params={"id": "missing"})
    assert r.status_code == 404
    assert r.json()["error"] == {"__type": "Not Found Error", "message": "Not found"}
    r = client.get("/api/3/action/resource_show", params={"id": "missing"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Not found: Resource was not found."
    r = client.post("/api/3/action/package_update", json={"id": "ds-0001"})
    assert r.status_code == 403
    assert r.json()["error"]["__type"] == "Authorization Error"
    r = client.get("/api/3/action/package_show")
    assert r.status_code == 409 and r.json()["error"]["id"] == ["Missing value"]


def test_bad_requests_are_bare_strings(client: TestClient) -> None:
    r = client.get("/api/3/action/no_such_action")
    assert r.status_code == 400
    assert r.json() == "Bad request - Action name not known: no_such_action"
    r = client.post("/api/3/action/package_search", content=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json().startswith("Bad request - JSON Error")
    r = client.post("/api/3/action/package_search", content=b"[1, 2]",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "dictionary" in r.json()


def test_post_json_form_and_json_in_form_key(client: TestClient) -> None:
    as_json = client.post("/api/3/action/package_search",
                          json={"q": "Dataset", "rows": 2, "facet.field": ["organization"]})
    assert as_json.status_code == 200
    assert len(as_json.json()["result"]["results"]) == 2
    as_form = client.post("/api/3/action/package_search",
                          data={"rows": "2", "facet.field": '["organization"]'})
    assert as_form.status_code == 200
    assert as_form.json()["result"]["facets"] == as_json.json()["result"]["facets"]
    key_form = client.post(
        "/api/3/action/package_search",
        content=(orjson.dumps({"rows": 1}).decode() + "=1").encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert key_form.status_code == 200 and len(key_form.json()["result"]["results"]) == 1


def test_rows_and_facet_limits(client: TestClient) -> None:
    res = client.get("/api/3/action/package_search").json()["result"]
    assert res["count"] == N and len(res["results"]) == 10
    assert res["sort"] == "score desc, metadata_modified desc"
    big = client.get("/api/3/action/package_search", params={"rows": 5000}).json()["result"]
    assert len(big["results"]) == 1000  # silently capped, as CKAN does
    tags = client.get("/api/3/action/package_search",
                      params={"facet.field": '["tags"]', "rows": 0}).json()["result"]
    assert len(tags["facets"]["tags"]) == 50  # facet.limit default
    unlimited = client.get("/api/3/action/package_search",
                           params={"facet.field": '["tags"]', "facet.limit": -1,
                                   "rows": 0}).json()["result"]
    assert len(unlimited["facets"]["tags"]) == 60
    repeated = client.get("/api/3/action/package_search?facet.field=tags&facet.field="
                          "organization&rows=0").json()["result"]
    assert set(repeated["facets"]) == {"tags", "organization"}
    fl = client.get("/api/3/action/package_search",
                    params={"fl": "name,title", "rows": 1}).json()["result"]
    assert set(fl["results"][0]) == {"name", "title"}


def test_jsonp_callback(client: TestClient) -> None:
    r = client.get("/api/3/action/package_list", params={"limit": 1, "callback": "cb"})
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.text.startswith("cb(") and r.text.endswith(");")


def test_group_list_sorting_and_validation(client: TestClient) -> None:
    r = client.get("/api/3/action/organization_list",
                   params={"all_fields": "true", "sort": "package_count desc"})
    orgs = r.json()["result"]
    assert [o["package_count"] for o in orgs] == sorted(
        (o["package_count"] for o in orgs), reverse=True)
    assert sum(o["package_count"] for o in orgs) == N
    bad = client.get("/api/3/action/organization_list", params={"sort": "color asc"})
    assert bad.status_code == 409
