"""DCAT-AP output of the catalogue and its datasets, validated with pyshacl against the
mandatory DCAT-AP properties (minimal shapes written for these tests, see the .ttl file)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pyshacl import validate
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from citypulse.catalogue.dcat import catalogue_graph, dataset_graph, serialize
from citypulse.catalogue.feeds import feed_packages
from citypulse.catalogue.service import Catalogue
from conftest import recorded_packages

SHAPES = Graph().parse(Path(__file__).with_name("dcat-ap-mandatory.shapes.ttl"))
BASE = "https://citypulse.example/"


def conforms(g: Graph) -> tuple[bool, str]:
    ok, _, text = validate(g, shacl_graph=SHAPES, inference="none", advanced=True)
    return bool(ok), str(text)


def test_catalogue_conforms(loaded_catalogue: Catalogue) -> None:
    loaded_catalogue.sync_feeds()
    g = catalogue_graph(loaded_catalogue, BASE)
    ok, text = conforms(g)
    assert ok, text
    catalog = URIRef(BASE + "catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in g
    assert len(set(g.objects(catalog, DCAT.dataset))) == loaded_catalogue.db.count()


@pytest.mark.parametrize("pkg", recorded_packages() + feed_packages(),
                         ids=lambda p: str(p["name"]))
def test_each_dataset_conforms(empty_catalogue: Catalogue, pkg: dict[str, object]) -> None:
    empty_catalogue.db.upsert_packages([pkg], source="t")
    stored = empty_catalogue.db.package(str(pkg["name"]))
    assert stored is not None
    g = dataset_graph(stored, BASE)
    ok, text = conforms(g)
    assert ok, text
    ds = URIRef(f"{BASE}datasets/{stored['name']}")
    titles = {(str(o), o.language) for o in g.objects(ds, DCTERMS.title)
              if isinstance(o, Literal)}
    assert (stored["title"], "en") in titles
    zh = (stored.get("title_translated") or {}).get("zh_Hant")
    if zh:
        assert (zh, "zh-Hant") in titles
    assert len(set(g.objects(ds, DCAT.distribution))) == len(stored["resources"])


def test_local_urls_become_absolute(empty_catalogue: Catalogue) -> None:
    pkg = feed_packages()[0]
    empty_catalogue.db.upsert_packages([pkg], source="t")
    stored = empty_catalogue.db.package(pkg["name"])
    assert stored is not None
    g = dataset_graph(stored, BASE)
    urls = {str(o) for o in g.objects(None, DCAT.accessURL)}
    assert f"{BASE}api/v1/feeds/{pkg['name']}/observations.csv" in urls
    assert all(u.startswith(("http://", "https://")) for u in urls)


def test_shapes_catch_a_missing_title() -> None:
    g = Graph()
    ds = URIRef(BASE + "datasets/broken")
    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCTERMS.description, Literal("no title", lang="en")))
    ok, text = conforms(g)
    assert not ok and "title" in text


def test_json_ld_and_turtle_hold_the_same_graph(loaded_catalogue: Catalogue) -> None:
    g = catalogue_graph(loaded_catalogue, BASE)
    ttl = Graph().parse(data=serialize(g, "turtle"), format="turtle")
    jsonld_text = serialize(g, "json-ld")
    assert "@context" in orjson.loads(jsonld_text)
    jsonld = Graph().parse(data=jsonld_text, format="json-ld")
    assert len(ttl) == len(jsonld) == len(g)
    with pytest.raises(ValueError):
        serialize(g, "xml")
