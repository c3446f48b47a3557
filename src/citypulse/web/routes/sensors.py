"""``/api/v1/sensors``: the authenticated HTTP intake of Smart Village / IoT sensor messages.

``POST /api/v1/sensors/readings`` with the device's key in ``X-API-Key`` and a
``citypulse.sensors/1`` message (or SensorThings-like observation) as the body; the answer is
202 ``{"status": "accepted", ...}`` or a refusal ``{"status": "refused", "reason", "detail"}``
with the status code of :data:`citypulse.sensors.ingest.STATUS_CODES`. Counters of accepted and
refused messages (by reason and device) are at ``/api/v1/sensors/stats``; the JSON schema at
``/api/v1/sensors/schema``.

The intake object lives in ``app.state.sensor_ingest``; ``citypulse serve`` sets it up around
its own pipeline (so sensor batches reach the alert engine). When absent it is built lazily
around ``app.state.pipeline`` or a new pipeline on the app's store, bus and archive.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Header, Request, Response

from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.sensors.ingest import MAX_BODY_BYTES, SensorIngest
from citypulse.sensors.keys import KeyStore
from citypulse.sensors.schema import SensorMessage, json_schema
from citypulse.web.routes.api import json_response

router = APIRouter(prefix="/api/v1/sensors", tags=["sensors"])

_build_lock = threading.Lock()


def sensor_ingest(request: Request) -> SensorIngest:
    state = request.app.state
    ingest: SensorIngest | None = getattr(state, "sensor_ingest", None)
    if ingest is not None:
        return ingest
    with _build_lock:
        ingest = getattr(state, "sensor_ingest", None)
        if ingest is None:
            settings = state.settings
            pipeline: Pipeline | None = getattr(state, "pipeline", None)
            if pipeline is None:
                pipeline = Pipeline(state.store, RawArchive(settings.archive_dir), state.bus)
                engine = getattr(state, "alert_engine", None)
                if engine is not None:
                    pipeline.on_stored.append(engine.on_stored)
            ingest = SensorIngest(pipeline, KeyStore.for_data_dir(settings.data_dir))
            state.sensor_ingest = ingest
    return ingest


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds ``limit`` (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_EXAMPLE = {
    "device_id": "tai-o-flood-01",
    "ts": "2024-06-01T10:05:00+08:00",
    "readings": [
        {"metric": "water_level_cm", "value": 87.5},
        {"metric": "battery_pct", "value": 91},
    ],
    "detections": [{"detection": "wild-animal", "confidence": 0.87, "species": "wild boar"}],
}

_REFUSAL = {
    "description": "Refused: `reason` is stable (see the sensors module docs), `detail` explains",
    "content": {
        "application/json": {
            "example": {"status": "refused", "device_id": None, "reason": "bad-key",
                        "detail": "unknown API key"}
        }
    },
}


@router.post(
    "/readings",
    status_code=202,
    summary="Send sensor readings and detections (one device, authenticated by X-API-Key)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": SensorMessage.model_json_schema(
                        ref_template="#/components/schemas/{model}"
                    ),
                    "example": _EXAMPLE,
                }
            },
        }
    },
    responses={
        202: {"description": "Accepted", "content": {"application/json": {"example": {
            "status": "accepted", "device_id": "tai-o-flood-01", "readings": 2,
            "detections": 1, "duplicates": 0}}}},
        400: _REFUSAL, 401: _REFUSAL, 403: _REFUSAL, 409: _REFUSAL, 413: _REFUSAL,
        422: _REFUSAL, 503: _REFUSAL,
    },
)
async def post_readings(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key", description="The device's key")]
    = None,
) -> Response:
    ingest = sensor_ingest(request)
    body = await _read_body(request, ingest.max_bytes)
    if body is None:
        result = ingest.refuse("too-large", f"body over {ingest.max_bytes} bytes")
    else:
        result = await anyio.to_thread.run_sync(
            partial(ingest.submit, body, api_key=x_api_key or "", transport="http")
        )
    headers = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'} if result.status_code == 401 else {}
    return Response(
        orjson.dumps(result.as_json()),
        status_code=result.status_code,
        media_type="application/json",
        headers=headers,
    )


@router.get("/stats", summary="Accepted and refused sensor messages, by reason and device")
def stats(request: Request) -> Response:
    ingest = sensor_ingest(request)
    out: dict[str, Any] = ingest.stats.snapshot()
    mqtt = getattr(request.app.state, "mqtt_subscriber", None)
    out["mqtt"] = mqtt.stats() if mqtt is not None else None
    out["max_body_bytes"] = MAX_BODY_BYTES
    return json_response(out)


@router.get("/schema", summary="JSON schema of sensor messages, metrics and detection kinds")
def schema() -> Response:
    return json_response(json_schema())
