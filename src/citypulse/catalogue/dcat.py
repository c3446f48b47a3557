"""DCAT-AP descriptions of the catalogue and its datasets (RDF via rdflib: Turtle, JSON-LD).

Mapping (the CKAN-to-DCAT mapping of ckanext-dcat, trimmed): package -> dcat:Dataset,
resource -> dcat:Distribution (accessURL always, downloadURL for files), organization ->
foaf:Agent publisher, group -> dcat:theme (skos:Concept in our own scheme), tag ->
dcat:keyword, maintainer -> dcat:contactPoint (vcard). Titles and descriptions carry one
literal per language (``@en``, ``@zh-Hant``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SKOS, XSD

from citypulse.catalogue.model import LICENCES, Package, now_ckan

if TYPE_CHECKING:
    from citypulse.catalogue.service import Catalogue

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU_FILE_TYPE = Namespace("http://publications.europa.eu/resource/authority/file-type/")
EU_LANGUAGE = Namespace("http://publications.europa.eu/resource/authority/language/")
IANA = "https://www.iana.org/assignments/media-types/"
LANG_TAGS = {"en": "en", "zh_Hant": "zh-Hant"}
CONTEXT = {
    "dcat": str(DCAT), "dct": str(DCTERMS), "foaf": str(FOAF), "vcard": str(VCARD),
    "skos": str(SKOS), "xsd": str(XSD), "rdf": str(RDF),
}
# Formats whose resources are files to download (not APIs or pages).
_FILE_FORMATS = {"CSV", "PARQUET", "XLSX", "XLS", "ZIP", "PDF", "GEOJSON", "JSON", "XML",
                 "XSD", "KML", "SHP", "DOCX", "TXT"}
_MEDIA_TYPES = {"CSV": "text/csv", "JSON": "application/json", "XML": "application/xml",
                "PARQUET": "application/vnd.apache.parquet", "RSS": "application/rss+xml",
                "GEOJSON": "application/geo+json", "PDF": "application/pdf",
                "XLSX": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "ZIP": "application/zip", "XSD": "application/xml", "TXT": "text/plain"}


def _graph() -> Graph:
    g = Graph()
    for prefix, ns in CONTEXT.items():
        g.bind(prefix, Namespace(ns))
    return g


def _iri(url: Any) -> URIRef | None:
    """A usable absolute http(s) IRI, or None (never let a bad URL break the graph)."""
    if not isinstance(url, str) or not url.strip():
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https", "ftp") or not parts.netloc:
        return None
    return URIRef(quote(url.strip(), safe=":/?#[]@!$&'()*+,;=%~"))


def _texts(obj: Mapping[str, Any], field: str) -> dict[str, str]:
    """Language tag -> text of a bilingual field."""
    out: dict[str, str] = {}
    tr = obj.get(f"{field}_translated")
    if isinstance(tr, Mapping):
        for key, value in tr.items():
            if isinstance(value, str) and value.strip():
                out[LANG_TAGS.get(str(key), str(key).replace("_", "-"))] = value.strip()
    base = obj.get(field)
    if isinstance(base, str) and base.strip() and "en" not in out:
        out["en"] = base.strip()
    return out


def _datetime(text: Any) -> Literal | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    value = text if len(text) > 10 else text + "T00:00:00"
    return Literal(value, datatype=XSD.dateTime)


def _absolute(url: str, base: str) -> str:
    return base.rstrip("/") + url if url.startswith("/") else url


def add_dataset(g: Graph, pkg: Package, base_url: str) -> URIRef:
    base = base_url.rstrip("/") + "/"
    ds = URIRef(f"{base}datasets/{quote(pkg['name'])}")
    g.add((ds, RDF.type, DCAT.Dataset))
    titles = _texts(pkg, "title") or {"en": pkg["name"]}
    for tag, text in titles.items():
        g.add((ds, DCTERMS.title, Literal(text, lang=tag)))
    descriptions = _texts(pkg, "notes") or titles  # DCAT-AP: a description is mandatory
    for tag, text in descriptions.items():
        g.add((ds, DCTERMS.description, Literal(text, lang=tag)))
    g.add((ds, DCTERMS.identifier, Literal(pkg["id"])))
    for prop, key in ((DCTERMS.issued, "metadata_created"), (DCTERMS.modified,
                                                             "metadata_modified")):
        lit = _datetime(pkg.get(key))
        if lit is not None:
            g.add((ds, prop, lit))
    page = URIRef(f"{base}datasets/{quote(pkg['name'])}")
    g.add((ds, DCAT.landingPage, page))
    g.add((page, RDF.type, FOAF.Document))
    org = pkg.get("organization")
    if isinstance(org, Mapping) and org.get("name"):
        agent = URIRef(f"{base}organization/{quote(str(org['name']))}")
        g.add((ds, DCTERMS.publisher, agent))
        g.add((agent, RDF.type, FOAF.Agent))
        g.add((agent, RDF.type, FOAF.Organization))
        for tag, text in (_texts(org, "title") or {"en": str(org["name"])}).items():
            g.add((agent, FOAF.name, Literal(text, lang=tag)))
    for t in pkg.get("tags") or []:
        if isinstance(t, Mapping) and t.get("name"):
            g.add((ds, DCAT.keyword, Literal(str(t["name"]))))
    scheme = URIRef(f"{base}groups")
    for grp in pkg.get("groups") or []:
        if isinstance(grp, Mapping) and grp.get("name"):
            concept = URIRef(f"{base}groups/{quote(str(grp['name']))}")
            g.add((ds, DCAT.theme, concept))
            g.add((concept, RDF.type, SKOS.Concept))
            g.add((concept, SKOS.inScheme, scheme))
            for tag, text in (_texts(grp, "title") or {"en": str(grp["name"])}).items():
                g.add((concept, SKOS.prefLabel, Literal(text, lang=tag)))
    if scheme in set(g.objects(None, SKOS.inScheme)):
        g.add((scheme, RDF.type, SKOS.ConceptScheme))
        g.add((scheme, DCTERMS.title, Literal("citypulse dataset categories", lang="en")))
    if pkg.get("maintainer") or pkg.get("maintainer_email"):
        contact = BNode()
        g.add((ds, DCAT.contactPoint, contact))
        g.add((contact, RDF.type, VCARD.Kind))
        g.add((contact, RDF.type, VCARD.Organization))
        g.add((contact, VCARD.fn, Literal(str(pkg.get("maintainer") or pkg.get(
            "maintainer_email")))))
        if pkg.get("maintainer_email"):
            g.add((contact, VCARD.hasEmail, URIRef(f"mailto:{pkg['maintainer_email']}")))
    licence = LICENCES.get(str(pkg.get("license_id") or ""))
    licence_iri = _iri(licence.url if licence else pkg.get("license_url"))
    if licence_iri is not None:
        g.add((licence_iri, RDF.type, DCTERMS.LicenseDocument))
    for res in pkg.get("resources") or []:
        add_distribution(g, ds, res, base, page, licence_iri)
    return ds


def add_distribution(g: Graph, ds: URIRef, res: Mapping[str, Any], base: str, page: URIRef,
                     licence: URIRef | None) -> URIRef:
    dist = URIRef(f"{ds}/resource/{quote(str(res.get('id') or res.get('position')))}")
    g.add((ds, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    url = _iri(_absolute(str(res.get("url") or ""), base))
    g.add((dist, DCAT.accessURL, url if url is not None else page))  # mandatory
    fmt = str(res.get("format") or "").strip().upper()
    if url is not None and fmt in _FILE_FORMATS and res.get("resource_type") != "api":
        g.add((dist, DCAT.downloadURL, url))
    for tag, text in _texts(res, "name").items():
        g.add((dist, DCTERMS.title, Literal(text, lang=tag)))
    for tag, text in _texts(res, "description").items():
        g.add((dist, DCTERMS.description, Literal(text, lang=tag)))
    if fmt:
        ftype = EU_FILE_TYPE[quote(fmt)]
        g.add((dist, DCTERMS["format"], ftype))
        g.add((ftype, RDF.type, DCTERMS.MediaTypeOrExtent))
    mime = res.get("mimetype") or _MEDIA_TYPES.get(fmt)
    if isinstance(mime, str) and "/" in mime:
        mt = URIRef(IANA + quote(mime))
        g.add((dist, DCAT.mediaType, mt))
        g.add((mt, RDF.type, DCTERMS.MediaType))
    if licence is not None:
        g.add((dist, DCTERMS.license, licence))
    size = res.get("size")
    if isinstance(size, int) and size >= 0:
        g.add((dist, DCAT.byteSize, Literal(size, datatype=XSD.nonNegativeInteger)))
    lit = _datetime(res.get("metadata_modified") or res.get("last_modified"))
    if lit is not None:
        g.add((dist, DCTERMS.modified, lit))
    return dist


def add_catalog(g: Graph, base_url: str, datasets: Iterable[URIRef]) -> URIRef:
    base = base_url.rstrip("/") + "/"
    cat = URIRef(f"{base}catalog")
    g.add((cat, RDF.type, DCAT.Catalog))
    g.add((cat, DCTERMS.title, Literal("citypulse open data catalogue", lang="en")))
    g.add((cat, DCTERMS.title, Literal("citypulse 開放數據目錄", lang="zh-Hant")))
    g.add((cat, DCTERMS.description, Literal(
        "Real-time city data of Hong Kong collected by citypulse, and datasets harvested "
        "from other open data portals such as DATA.GOV.HK.", lang="en")))
    g.add((cat, DCTERMS.description, Literal(
        "citypulse 收集的香港實時城市數據，以及從 DATA.GOV.HK 等開放數據平台收錄的數據集。",
        lang="zh-Hant")))
    publisher = URIRef(f"{base}organization/citypulse")
    g.add((cat, DCTERMS.publisher, publisher))
    g.add((publisher, RDF.type, FOAF.Agent))
    g.add((publisher, FOAF.name, Literal("citypulse", lang="en")))
    g.add((cat, FOAF.homepage, URIRef(base)))
    for code in ("ENG", "ZHO"):
        g.add((cat, DCTERMS.language, EU_LANGUAGE[code]))
        g.add((EU_LANGUAGE[code], RDF.type, DCTERMS.LinguisticSystem))
    g.add((cat, DCTERMS.modified, Literal(now_ckan(), datatype=XSD.dateTime)))
    for ds in datasets:
        g.add((cat, DCAT.dataset, ds))
    return cat


def dataset_graph(pkg: Package, base_url: str) -> Graph:
    g = _graph()
    add_dataset(g, pkg, base_url)
    return g


def catalogue_graph(cat: Catalogue, base_url: str, *, start: int = 0,
                    rows: int | None = None) -> Graph:
    """The catalogue with (a page of) its datasets, ordered by name."""
    g = _graph()
    names = cat.db.package_names(limit=rows, offset=start)
    datasets = []
    for name in names:
        pkg = cat.db.package(name)
        if pkg is not None:
            datasets.append(add_dataset(g, pkg, base_url))
    add_catalog(g, base_url, datasets)
    return g


def serialize(g: Graph, fmt: str) -> str:
    fmt = fmt.lower()
    if fmt in ("jsonld", "json-ld"):
        return g.serialize(format="json-ld", context=CONTEXT, indent=1)
    if fmt in ("ttl", "turtle"):
        return g.serialize(format="turtle")
    raise ValueError(f"unknown RDF format {fmt!r}")
