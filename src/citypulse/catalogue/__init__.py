"""The open data catalogue: datasets in CKAN's package shape, stored and searched in SQLite
FTS5 (``db``, ``search``), served through a CKAN-compatible Action API (``actions``, web route
``ckan``) and as DCAT-AP (``dcat``), filled from the feed registry (``feeds``) and by
harvesting other CKAN portals such as DATA.GOV.HK (``harvest``, CLI ``citypulse catalogue``).
"""
