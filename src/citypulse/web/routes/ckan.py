"""CKAN-compatible Action API: ``/api/3/action/{action}`` (and ``/api/action/{action}``, the
unversioned path the ``ckanapi`` client calls), GET or POST (JSON or form body), with CKAN's
response envelope and error shapes (``ckan/views/api.py``)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from citypulse.catalogue.actions import ActionContext, call_action
from citypulse.catalogue.errors import ActionError, BadRequest
from citypulse.catalogue.service import catalogue_for

router = APIRouter(tags=["CKAN Action API"])


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code,
                    media_type="application/json;charset=utf-8")


def _mixed(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Repeated keys become lists, single ones stay strings (CKAN's ``mixed``)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out


async def request_data(request: Request) -> dict[str, Any]:
    """The action's data dict, as CKAN reads it: form fields (or a JSON document posted as
    the only form key), else URL parameters, else a JSON body. Raises BadRequest."""
    if request.method == "GET":
        return _mixed(list(request.query_params.multi_items()))
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if ctype == "application/x-www-form-urlencoded" and body:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        if len(pairs) == 1 and pairs[0][1] in ("1", ""):
            try:
                data = orjson.loads(pairs[0][0])
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"JSON Error: Error decoding JSON data. Error: {exc!r}") from exc
        else:
            data = _mixed(pairs)
    elif ctype == "multipart/form-data":
        form = await request.form()
        data = _mixed([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
    elif request.query_params:
        data = _mixed(list(request.query_params.multi_items()))
    elif body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"JSON Error: Error decoding JSON data. Error: {exc!r}") from exc
    else:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest(
            "JSON Error: Request data JSON decoded to "
            f"{data!r} but it needs to be a dictionary."
        )
    return data


def _help_url(request: Request, name: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/3/action/help_show?name={name}"


async def _action(request: Request, name: str) -> Response:
    try:
        data = await request_data(request)
    except BadRequest as exc:
        return _json(exc.body, status_code=400)
    callback = data.pop("callback", None) if request.method == "GET" else None
    envelope: dict[str, Any] = {"help": _help_url(request, name)}
    ctx = ActionContext(
        catalogue_for(request.app.state),
        base_url=str(request.base_url),
        lang=str(getattr(request.state, "lang", "en")),
    )
    try:
        result = await run_in_threadpool(call_action, name, ctx, data)
    except BadRequest as exc:
        return _json(exc.body, status_code=400)
    except ActionError as exc:
        envelope["error"] = exc.error_dict()
        envelope["success"] = False
        return _json(envelope, status_code=exc.status)
    envelope["success"] = True
    envelope["result"] = result
    if isinstance(callback, str) and callback:
        body = orjson.dumps(envelope).decode()
        return Response(f"{html.escape(callback)}({body});",
                        media_type="application/javascript;charset=utf-8")
    return _json(envelope)


@router.api_route("/api/3/action/{name}", methods=["GET", "POST"],
                  summary="CKAN Action API (package_search, package_show, ...)")
async def action_v3(request: Request, name: str) -> Response:
    return await _action(request, name)


@router.api_route("/api/action/{name}", methods=["GET", "POST"], include_in_schema=False)
async def action_unversioned(request: Request, name: str) -> Response:
    return await _action(request, name)


@router.get("/api/3", include_in_schema=False)
async def api_version() -> Response:
    return _json({"version": 3})
