"""Harvest datasets from a CKAN Action API into the catalogue: incremental, resumable.

Two ways to walk a source, chosen by probing it:

- ``search``: ``package_search`` sorted by ``metadata_modified`` ascending, filtered to
  what changed since the last run (``fq=metadata_modified:[<last> TO *]``), paged with
  ``start``/``rows``. The high-water mark advances after each stored page.
- ``list``: for sources that only offer ``package_list`` + ``package_show`` (DATA.GOV.HK's
  public API: GET only, ``package_list``, ``package_show``, ``group_list``, ``group_show``).
  ``group_show`` lists each category's datasets with their ``metadata_modified``, so only
  new or changed datasets are fetched with ``package_show``. The plan (names still to fetch)
  is stored in the catalogue and ticked off in the same transaction as each stored batch, so
  an interrupted run resumes where it stopped.

Language prefixes (DATA.GOV.HK serves ``/en-data/`` and ``/tc-data/``): every dataset is read
in each language and merged into one bilingual package (``title_translated`` etc.).

A source that times out or answers garbage stops: what was stored stays, the error is recorded
with the source, and the next run resumes.
"""

from __future__ import annotations

import contextlib
import copy
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from citypulse.catalogue.db import LOCAL_SOURCE, CatalogueDB
from citypulse.catalogue.model import Package, now_ckan

LANG_PREFIXES = {"en": "en-data", "zh_Hant": "tc-data"}
_PREFIX_LANG = {"en-data": "en", "tc-data": "zh_Hant", "sc-data": "zh_Hans"}
_API_SUFFIX = re.compile(r"/(api(/\d+)?(/action)?)/?$")
DEFAULT_TIMEOUT_S = 20.0
USER_AGENT = "citypulse-harvester/0.1 (+https://github.com/citypulse)"

ProgressHook = Callable[[int, int], None]
"""Called with (done, total) as datasets are processed."""


class SourceError(Exception):
    """The source failed (timeout, HTTP error, garbage): stop harvesting it for now."""


class SourceNotFound(SourceError):
    """The source answered CKAN's Not Found for one object (deleted meanwhile)."""


@dataclass(frozen=True, slots=True)
class HarvestSource:
    key: str
    root: str
    api: dict[str, str]  # language -> Action API base URL ending in "/"
    primary: str = "en"

    @property
    def multilingual(self) -> bool:
        return len(self.api) > 1


def resolve_source(url: str, *, languages: Mapping[str, str] | None = None) -> HarvestSource:
    """Where the Action API of ``url`` lives, per language.

    ``https://data.gov.hk`` or any URL ending in a language folder (``/en-data``) gets
    DATA.GOV.HK's language prefixes; ``languages`` (``{"en": "en-data", ...}``) overrides.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(f"not an http(s) URL: {url!r}")
    path = _API_SUFFIX.sub("", parts.path.rstrip("/"))
    segments = [s for s in path.split("/") if s]
    prefixes: dict[str, str] | None = dict(languages) if languages else None
    if segments and segments[-1] in _PREFIX_LANG:
        segments = segments[:-1]
        prefixes = prefixes or dict(LANG_PREFIXES)
    if prefixes is None and parts.hostname in ("data.gov.hk", "www.data.gov.hk"):
        prefixes = dict(LANG_PREFIXES)
    root = urlunsplit((parts.scheme, parts.netloc, "/".join(["", *segments]), "", "")).rstrip("/")
    if prefixes:
        api = {lang: f"{root}/{pre}/api/3/action/" for lang, pre in prefixes.items()}
        primary = "en" if "en" in api else next(iter(api))
        key = root + "|" + ",".join(f"{k}={v}" for k, v in sorted(prefixes.items()))
    else:
        api = {"en": f"{root}/api/3/action/"}
        primary = "en"
        key = root
    return HarvestSource(key=key, root=root, api=api, primary=primary)


@dataclass(slots=True)
class HarvestReport:
    source: str
    mode: str = ""
    listed: int = 0
    planned: int = 0
    fetched: int = 0
    changed: int = 0
    deleted: int = 0
    skipped: int = 0
    resumed: bool = False
    complete: bool = False
    error: str | None = None
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.fetched / self.elapsed_s if self.elapsed_s > 0 else 0.0


class CkanClient:
    """GET-only CKAN Action API calls (what DATA.GOV.HK allows) with bounded retries."""

    def __init__(self, source: HarvestSource, *, timeout: float = DEFAULT_TIMEOUT_S,
                 retries: int = 1, client: httpx.Client | None = None) -> None:
        self.source = source
        self.retries = retries
        self._own = client is None
        self.http = client or httpx.Client(
            timeout=httpx.Timeout(timeout), headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
        )

    def close(self) -> None:
        if self._own:
            self.http.close()

    def call(self, action: str, params: Mapping[str, Any] | None = None,
             *, lang: str | None = None) -> Any:
        url = self.source.api[lang or self.source.primary] + action
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                resp = self.http.get(url, params={k: v for k, v in (params or {}).items()})
            except httpx.TimeoutException as exc:
                last = SourceError(f"{action}: timed out ({exc.__class__.__name__})")
            except httpx.HTTPError as exc:
                last = SourceError(f"{action}: {exc.__class__.__name__}: {exc}")
            else:
                if resp.status_code >= 500:
                    last = SourceError(f"{action}: HTTP {resp.status_code}")
                else:
                    return _result(action, resp)
            if attempt < self.retries:
                time.sleep(min(0.2 * (attempt + 1), 1.0))
        assert last is not None
        raise last


def _result(action: str, resp: httpx.Response) -> Any:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError as exc:
        ctype = resp.headers.get("content-type", "?")
        raise SourceError(
            f"{action}: HTTP {resp.status_code}, not JSON ({ctype}, {len(resp.content)} bytes)"
        ) from exc
    if not isinstance(body, dict) or "success" not in body:
        raise SourceError(f"{action}: HTTP {resp.status_code}, not a CKAN response")
    if body.get("success") is not True:
        raw_err = body.get("error")
        err: dict[str, Any] = raw_err if isinstance(raw_err, dict) else {}
        etype = str(err.get("__type", "error"))
        msg = str(err.get("message", ""))
        if etype == "Not Found Error":
            raise SourceNotFound(f"{action}: {msg or etype}")
        raise SourceError(f"{action}: {etype}: {msg}".rstrip(": "))
    if "result" not in body:
        raise SourceError(f"{action}: CKAN response without a result")
    return body["result"]


def _package(action: str, value: Any) -> Package:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise SourceError(f"{action}: result is not a CKAN package")
    return value


# --- merging languages ---------------------------------------------------------------------

def _tr(target: dict[str, Any], field_name: str, lang: str, value: Any) -> None:
    if isinstance(value, str) and value:
        tr = target.setdefault(f"{field_name}_translated", {})
        if isinstance(tr, dict):
            tr.setdefault(lang, value)


def merge_languages(versions: Mapping[str, Package], primary: str = "en") -> Package:
    """One bilingual package from the same package read in several languages: text fields
    of each language go to ``*_translated``; structure comes from the primary language."""
    base_lang = primary if primary in versions else next(iter(versions))
    out = copy.deepcopy(versions[base_lang])
    res_by_id = {r.get("id"): r for r in out.get("resources") or [] if isinstance(r, dict)}
    groups_by_name = {g.get("name"): g for g in out.get("groups") or [] if isinstance(g, dict)}
    tag_names = {t.get("name") for t in out.get("tags") or [] if isinstance(t, dict)}
    for lang in [base_lang, *[k for k in versions if k != base_lang]]:
        pkg = versions[lang]
        _tr(out, "title", lang, pkg.get("title"))
        _tr(out, "notes", lang, pkg.get("notes"))
        org = pkg.get("organization")
        if isinstance(org, dict) and isinstance(out.get("organization"), dict):
            _tr(out["organization"], "title", lang, org.get("title"))
            _tr(out["organization"], "description", lang, org.get("description"))
        for g in pkg.get("groups") or []:
            if isinstance(g, dict) and g.get("name") in groups_by_name:
                _tr(groups_by_name[g["name"]], "title", lang, g.get("title"))
                _tr(groups_by_name[g["name"]], "description", lang, g.get("description"))
        for pos, r in enumerate(pkg.get("resources") or []):
            if not isinstance(r, dict):
                continue
            target = res_by_id.get(r.get("id"))
            if target is None and pos < len(out.get("resources") or []):
                target = out["resources"][pos]
            if isinstance(target, dict):
                _tr(target, "name", lang, r.get("name"))
                _tr(target, "description", lang, r.get("description"))
        for t in pkg.get("tags") or []:
            if isinstance(t, dict) and t.get("name") and t["name"] not in tag_names:
                out.setdefault("tags", []).append({"name": t["name"]})
                tag_names.add(t["name"])
    return out


def _finish(pkg: Package, source: HarvestSource) -> Package:
    """Provenance extras, and DATA.GOV.HK's licence (its API leaves ``license_id`` null)."""
    out = dict(pkg)
    extras = [e for e in out.get("extras") or [] if isinstance(e, dict)]
    keys = {e.get("key") for e in extras}
    add = {"harvest_source": source.root, "harvest_source_key": source.key,
           "harvest_object_id": out.get("id")}
    if source.multilingual:
        lang_dir = LANG_PREFIXES.get(source.primary, "en-data")
        add["source_page"] = f"{source.root}/{lang_dir}/dataset/{out['name']}"
        if not out.get("license_id"):
            out["license_id"] = "hk-datagovhk-terms"
            out.pop("license_title", None)
    for k, v in add.items():
        if k not in keys and v is not None:
            extras.append({"key": k, "value": v})
    out["extras"] = extras
    return out


# --- the harvester ------------------------------------------------------------------------

class Harvester:
    def __init__(self, db: CatalogueDB, url: str, *, full: bool = False,
                 timeout: float = DEFAULT_TIMEOUT_S, retries: int = 1, page_size: int = 100,
                 batch_size: int = 50, languages: Mapping[str, str] | None = None,
                 client: httpx.Client | None = None, progress: ProgressHook | None = None,
                 log: Callable[[str], None] | None = None,
                 max_datasets: int | None = None, concurrency: int = 4) -> None:
        self.db = db
        self.source = resolve_source(url, languages=languages)
        self.full = full
        self.page_size = max(1, min(page_size, 1000))
        self.batch_size = max(1, batch_size)
        self.client = CkanClient(self.source, timeout=timeout, retries=retries, client=client)
        self.progress = progress
        self.log = log or (lambda _msg: None)
        self.max_datasets = max_datasets
        self.report = HarvestReport(source=self.source.key)
        # package_show calls in flight at once (list mode): over the internet each one
        # waits ~100 ms, so a few in parallel multiply the rate; few enough to be polite.
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency),
                                       thread_name_prefix="harvest")

    def run(self) -> HarvestReport:
        started = time.perf_counter()
        state = self.db.source_state(self.source.key)
        state.update({"url": self.source.root, "last_attempt": now_ckan()})
        try:
            mode = self._mode(state)
            self.report.mode = mode
            state["mode"] = mode
            if mode == "search":
                self._run_search(state)
            else:
                self._run_list(state)
            self.report.complete = True
            state.update({"status": "ok", "last_success": now_ckan(), "last_error": None})
        except SourceError as exc:
            self.report.error = str(exc)
            state.update({"status": "interrupted", "last_error": str(exc),
                          "last_error_at": now_ckan()})
            self.log(f"harvest of {self.source.root} stopped: {exc}")
        finally:
            self.report.elapsed_s = time.perf_counter() - started
            state["last_report"] = {
                "fetched": self.report.fetched, "changed": self.report.changed,
                "deleted": self.report.deleted, "error": self.report.error,
            }
            self.db.save_source_state(self.source.key, state)
            self.client.close()
            self.pool.shutdown(wait=True)
        return self.report

    def _mode(self, state: dict[str, Any]) -> str:
        if state.get("mode") in ("search", "list") and state.get("status") == "interrupted":
            return str(state["mode"])
        if self.source.multilingual:
            return "list"  # DATA.GOV.HK: no package_search on the public API
        try:
            probe = self.client.call("package_search", {"rows": 0})
        except SourceNotFound:
            return "list"
        except SourceError as exc:
            if "timed out" in str(exc) or "HTTP 5" in str(exc):
                raise
            return "list"
        return "search" if isinstance(probe, dict) and "count" in probe else "list"

    # --- helpers ------------------------------------------------------------------------

    def _store(self, packages: list[Package], done: Sequence[str]) -> None:
        mine: list[Package] = []
        for pkg in packages:
            owner = self.db.owner_of(pkg["name"])
            if owner is not None and owner != self.source.key:
                self.report.skipped += 1
                if owner == LOCAL_SOURCE or len(self.report.warnings) < 20:
                    self.report.warnings.append(
                        f"{pkg['name']}: name already used by {owner}; skipped"
                    )
                continue
            mine.append(_finish(pkg, self.source))
        self.report.changed += self.db.harvested(self.source.key, mine, done)

    def _show(self, name: str) -> Package | None:
        versions: dict[str, Package] = {}
        for lang in self.source.api:
            try:
                versions[lang] = _package(
                    "package_show", self.client.call("package_show", {"id": name}, lang=lang)
                )
            except SourceNotFound:
                if lang == self.source.primary:
                    return None
        if not versions:
            return None
        return merge_languages(versions, self.source.primary)

    def _tick(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def _names(self) -> list[str]:
        names: dict[str, None] = {}
        offset = 0
        while True:
            page = self.client.call("package_list", {"limit": 1000, "offset": offset})
            if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
                raise SourceError("package_list: result is not a list of names")
            fresh = [n for n in page if n not in names]
            names.update(dict.fromkeys(page))
            # Stop on a short page, or when the source ignores limit/offset (nothing new).
            if len(page) < 1000 or len(page) > 1000 or not fresh:
                break
            offset += len(page)
        return list(names)

    def _delete_missing(self, remote: set[str]) -> None:
        local = self.db.source_packages(self.source.key)
        gone = [n for n in local if n not in remote]
        if gone:
            self.report.deleted += self.db.delete_packages(gone)

    # --- list mode ----------------------------------------------------------------------

    def _remote_modified(self) -> dict[str, str]:
        """name -> metadata_modified from the groups' dataset lists, and the groups
        themselves (bilingual) stored as catalogue groups."""
        modified: dict[str, str] = {}
        try:
            group_names = self.client.call("group_list")
        except SourceNotFound:
            return modified
        if not isinstance(group_names, list):
            raise SourceError("group_list: result is not a list")
        groups: list[dict[str, Any]] = []
        for gname in group_names:
            if not isinstance(gname, str):
                continue
            merged: dict[str, Any] = {}
            for lang in self.source.api:
                g = self.client.call(
                    "group_show", {"id": gname, "include_datasets": "true"}, lang=lang
                )
                if not isinstance(g, dict):
                    raise SourceError("group_show: result is not a group")
                if not merged:
                    merged = {k: v for k, v in g.items() if k != "packages"}
                _tr(merged, "title", lang, g.get("title"))
                _tr(merged, "description", lang, g.get("description"))
                for p in g.get("packages") or []:
                    if isinstance(p, dict) and isinstance(p.get("name"), str):
                        mod = str(p.get("metadata_modified") or "")
                        if mod > modified.get(p["name"], ""):
                            modified[p["name"]] = mod
            if merged.get("name"):
                groups.append(merged)
        if groups:
            self.db.upsert_groups(groups, organizations=False)
        return modified

    def _run_list(self, state: dict[str, Any]) -> None:
        todo = self.db.todo(self.source.key) if state.get("status") == "interrupted" else []
        if todo:
            self.report.resumed = True
            self.log(f"resuming: {len(todo)} datasets left from the last run")
        else:
            names = self._names()
            self.report.listed = len(names)
            remote_mod = self._remote_modified()
            local = self.db.source_packages(self.source.key)
            todo = [
                (n, remote_mod.get(n)) for n in names
                if self.full or n not in local or remote_mod.get(n) is None
                or str(remote_mod[n]) > local[n]
            ]
            if self.max_datasets is not None:
                todo = todo[:self.max_datasets]
            self.db.set_todo(self.source.key, todo)
            if self.max_datasets is None:
                self._delete_missing(set(names))
            state["status"] = "interrupted"  # until the to-do list is empty
            state["planned_at"] = now_ckan()
            self.db.save_source_state(self.source.key, state)
        self.report.planned = len(todo)
        total = len(todo)
        self._tick(0, total)
        done_count = 0
        for i in range(0, total, self.batch_size):
            chunk = [name for name, _ in todo[i:i + self.batch_size]]
            results: dict[str, Package | None] = {}
            error: SourceError | None = None
            futures = {self.pool.submit(self._show, name): name for name in chunk}
            for fut in as_completed(futures):
                try:
                    results[futures[fut]] = fut.result()
                except SourceError as exc:
                    error = error or exc
            # Keep what this batch fetched, even when part of it failed.
            done = [n for n in chunk if n in results]
            packages = [p for n in done if (p := results[n]) is not None]
            self.report.fetched += len(packages)
            self._store(packages, done)
            if error is not None:
                raise error
            done_count += len(chunk)
            self._tick(done_count, total)
        mods = [str(m) for _, m in todo if m]
        if mods:
            state["hwm"] = max([*mods, str(state.get("hwm") or "")])

    # --- search mode --------------------------------------------------------------------

    def _run_search(self, state: dict[str, Any]) -> None:
        since = None if self.full else state.get("hwm")
        fq = f"metadata_modified:[{since}Z TO *]" if since else ""
        self.report.resumed = state.get("status") == "interrupted"
        start = 0
        total: int | None = None
        seen = 0
        hwm = str(state.get("hwm") or "")
        while True:
            params: dict[str, Any] = {"rows": self.page_size, "start": start,
                                      "sort": "metadata_modified asc, name asc"}
            if fq:
                params["fq"] = fq
            page = self.client.call("package_search", params)
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                raise SourceError("package_search: result has no results list")
            if total is None:
                total = int(page.get("count") or 0)
                if self.max_datasets is not None:
                    total = min(total, self.max_datasets)
                self.report.planned = total
                self._tick(0, total)
            results = [_package("package_search", p) for p in page["results"]]
            if not results:
                break
            if self.max_datasets is not None:
                results = results[:max(0, self.max_datasets - seen)]
            packages: list[Package] = []
            for p in results:
                if self.source.multilingual:
                    shown = self._show(p["name"])
                    if shown is not None:
                        packages.append(shown)
                else:
                    packages.append(p)
            self.report.fetched += len(packages)
            self._store(packages, [])
            seen += len(results)
            mods = [str(p.get("metadata_modified") or "") for p in results]
            hwm = max([hwm, *mods])
            state["hwm"] = hwm
            state["status"] = "interrupted"
            self.db.save_source_state(self.source.key, state)
            self._tick(min(seen, total), total)
            if seen >= total or (self.max_datasets is not None and seen >= self.max_datasets):
                break
            start += len(page["results"])
        self.report.listed = seen
        if self.max_datasets is None:
            with contextlib.suppress(SourceNotFound):
                self._delete_missing(set(self._names()))


def harvest(db: CatalogueDB, url: str, **kwargs: Any) -> HarvestReport:
    """Harvest one CKAN source into ``db`` (see ``Harvester`` for the options)."""
    return Harvester(db, url, **kwargs).run()

