"""A real HTTP server on 127.0.0.1 replaying recorded CKAN responses (DATA.GOV.HK's shape).

Files: ``fixtures/datagovhk/<lang-prefix>/<action>.json`` and
``<action>/<id>.json``. Like DATA.GOV.HK's public API it answers GET ``package_list``
(limit/offset), ``package_show``, ``group_list`` and ``group_show`` only; other actions get
the HTML 403 page a gateway would give. Tests change the source between runs with
``patch`` (fields of a dataset), ``hide`` (a dataset disappears), ``garbage`` (an HTML page
instead of JSON) and ``delay`` (a slow answer, to time out).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "datagovhk"
ACTIONS = ("package_list", "package_show", "group_list", "group_show")


class ReplayCKAN:
    def __init__(self, root: Path = FIXTURES) -> None:
        self.root = root
        self.calls: list[tuple[str, str, str]] = []  # (prefix, action, id)
        self.patches: dict[str, dict[str, Any]] = {}  # name -> fields (all languages)
        self.hidden: set[str] = set()
        self.garbage: set[tuple[str, str]] = set()  # (action, id)
        self.delay: dict[tuple[str, str], float] = {}
        self.extra: dict[str, dict[str, Any]] = {}  # prefix -> name -> package (added)
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    # --- data ----------------------------------------------------------------------------

    def _load(self, prefix: str, action: str, ident: str | None = None) -> dict[str, Any] | None:
        path = self.root / prefix / (f"{action}/{ident}.json" if ident else f"{action}.json")
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def _patched(self, pkg: dict[str, Any]) -> dict[str, Any]:
        patch = self.patches.get(pkg.get("name", ""))
        return {**pkg, **copy.deepcopy(patch)} if patch else pkg

    def respond(self, prefix: str, action: str, params: dict[str, str]) -> tuple[int, str, bytes]:
        ident = params.get("id", "")
        with self._lock:
            self.calls.append((prefix, action, ident))
        if (action, ident) in self.delay:
            time.sleep(self.delay[(action, ident)])
        if (action, ident) in self.garbage:
            return 200, "text/html", b"<html><body><h1>Service Unavailable</h1></body></html>"
        if action not in ACTIONS:
            return 403, "text/html", b"<html><body><h1>403 Forbidden</h1></body></html>"
        help_url = f"https://data.gov.hk/{prefix}/api/3/action/help_show?name={action}"
        not_found = {"help": help_url, "success": False,
                     "error": {"message": "Not found", "__type": "Not Found Error"}}
        if action == "package_list":
            doc = self._load(prefix, action)
            if doc is None:
                return 404, "application/json", json.dumps(not_found).encode()
            names = [n for n in doc["result"] if n not in self.hidden]
            names = sorted({*names, *self.extra.get(prefix, {})})
            offset = int(params.get("offset", 0) or 0)
            limit = params.get("limit")
            doc["result"] = names[offset:offset + int(limit)] if limit else names[offset:]
        elif action == "group_list":
            doc = self._load(prefix, action)
        elif action == "package_show":
            added = self.extra.get(prefix, {}).get(ident)
            doc = ({"help": help_url, "success": True, "result": added} if added else
                   None if ident in self.hidden else self._load(prefix, action, ident))
            if doc is not None:
                doc["result"] = self._patched(doc["result"])
        else:  # group_show
            doc = self._load(prefix, action, ident)
            if doc is not None:
                doc["result"]["packages"] = [
                    self._patched(p) for p in doc["result"].get("packages", [])
                    if p.get("name") not in self.hidden
                ]
        if doc is None:
            return 404, "application/json", json.dumps(not_found).encode()
        return 200, "application/json;charset=utf-8", json.dumps(doc).encode()

    def show_count(self, prefix: str | None = None) -> int:
        return sum(1 for p, a, _ in self.calls if a == "package_show" and prefix in (None, p))

    # --- server --------------------------------------------------------------------------

    def start(self) -> str:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                bits = [b for b in parts.path.split("/") if b]
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if len(bits) == 5 and bits[1:4] == ["api", "3", "action"]:
                    status, ctype, body = replay.respond(bits[0], bits[4], params)
                else:
                    status, ctype, body = 404, "text/html", b"<html>Not Found</html>"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def do_POST(self) -> None:
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def replay_server(root: Path = FIXTURES) -> Iterator[tuple[ReplayCKAN, str]]:
    replay = ReplayCKAN(root)
    url = replay.start()
    try:
        yield replay, url
    finally:
        replay.stop()
