// Every declarative dashboard (/dashboards/*, /districts/*): draws the maps (Leaflet on the
// offline district base map) and charts (uPlot) from the JSON each tile carries, keeps each tile's
// "updated ... ago" and stale badge current, and swaps in a fresh server-rendered tile when the
// SSE stream announces new data from one of the tile's feeds. Without JavaScript the
// server-rendered tiles (tables behind every map and chart) are the whole page.

import { addBaseMap, districtsGeo, newMap } from "./basemap.js";
import { subscribe } from "./live.js";
import { ageText, hkDate, hkt } from "./timefmt.js";

const config = JSON.parse(document.getElementById("dashboard-config")?.textContent || "{}");
const t = JSON.parse(document.getElementById("dashboard-strings")?.textContent || "{}");
const lang = t.lang || document.documentElement.lang || "en";
const maps = new Map(); // tile id -> {map, layer, el, kind, base}
const charts = new Map(); // tile id -> uPlot
const timers = new Map(); // tile id -> debounce timer
const REFRESH_MS = 5 * 60_000; // safety net: re-read every tile now and then

function readJSON(el, selector) {
  const node = el.querySelector(selector);
  if (!node) return null;
  try {
    return JSON.parse(node.textContent || "null");
  } catch (_err) {
    return null;
  }
}

// --- freshness --------------------------------------------------------------------------------

function updateFreshness(tile) {
  const updated = tile.dataset.updated;
  if (!updated) return;
  const seconds = (Date.now() - new Date(updated).getTime()) / 1000;
  const age = tile.querySelector("[data-age]");
  if (age) age.textContent = `(${ageText(Math.max(0, seconds), t)})`;
  const limit = Number(tile.dataset.staleAfter || 0);
  const stale = tile.dataset.state !== "unavailable" && limit > 0 && seconds > limit;
  tile.classList.toggle("is-stale", stale || tile.dataset.state === "stale");
  const badge = tile.querySelector("[data-stale-badge]");
  if (badge) badge.hidden = !(stale || tile.dataset.state === "stale");
}

function updateAllFreshness() {
  for (const tile of document.querySelectorAll(".tile[data-tile]")) updateFreshness(tile);
}

// --- maps ---------------------------------------------------------------------------------------

function markerFor(p) {
  const L = window.L;
  if (p.text) {
    const span = document.createElement("span");
    span.className = "marker-label";
    span.textContent = p.text;
    span.style.background = p.colour;
    span.style.color = p.ink;
    const icon = L.divIcon({ className: "marker-wrap", html: span, iconSize: null });
    return L.marker([p.lat, p.lon], { icon, title: p.title, alt: p.title, keyboard: false });
  }
  return L.circleMarker([p.lat, p.lon], {
    radius: 6, color: "#1f2d3a", weight: 1, fillColor: p.colour, fillOpacity: 0.9,
  });
}

function drawPoints(state, payload) {
  const L = window.L;
  if (state.layer) state.layer.remove();
  const group = L.featureGroup();
  for (const p of payload.points || []) {
    const m = markerFor(p);
    m.bindTooltip(() => document.createTextNode(String(p.title ?? "")));  // text, never HTML
    m.addTo(group);
  }
  group.addTo(state.map);
  state.layer = group;
  state.el.dataset.points = String((payload.points || []).length);
}

async function drawAreas(state, payload) {
  const L = window.L;
  const geo = await districtsGeo();
  if (state.layer) state.layer.remove();
  const areas = payload.areas || {};
  const layer = L.geoJSON(
    { type: "FeatureCollection", features: geo.features.filter((f) => f.properties.kind === "district") },
    {
      style: (f) => {
        const a = areas[f.properties.id];
        return {
          color: f.properties.id === payload.focus ? "#1f2d3a" : "#5c6b7a",
          weight: f.properties.id === payload.focus ? 3 : 1,
          fillColor: a ? a.colour : "#d8dde3",
          fillOpacity: a ? 0.85 : 0.35,
        };
      },
      onEachFeature: (f, lyr) => {
        const a = areas[f.properties.id];
        const name = lang.startsWith("zh") ? f.properties.name_zh : f.properties.name_en;
        lyr.bindTooltip(() => document.createTextNode(String((a ? a.title : name) ?? "")));
        lyr.on("click", () => {
          const base = (config.fragment || "/dashboards/").startsWith("/zh-hant") ? "/zh-hant" : "";
          window.location.assign(`${base}/districts/${f.properties.id}`);
        });
      },
    },
  ).addTo(state.map);
  state.layer = layer;
  state.el.dataset.areas = String(Object.keys(areas).length);
}

function clusterIcon(count) {
  const L = window.L;
  const span = document.createElement("span");
  span.className = "cluster-label";
  span.textContent = count >= 1000 ? `${(count / 1000).toFixed(count >= 10000 ? 0 : 1)}k` : String(count);
  const size = count >= 1000 ? 46 : count >= 100 ? 38 : 30;
  return L.divIcon({ className: "cluster-wrap", html: span, iconSize: [size, size] });
}

async function drawClusters(state) {
  const L = window.L;
  if (typeof window.Supercluster !== "function") return;
  const url = state.el.dataset.url;
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const body = await res.json();
  const features = body.id.map((id, i) => ({
    type: "Feature",
    properties: { id, n: body.hotspots[i] },
    geometry: { type: "Point", coordinates: [body.lon[i], body.lat[i]] },
  }));
  const index = new window.Supercluster({ radius: 60, maxZoom: 16 });
  index.load(features);
  const layer = L.layerGroup().addTo(state.map);
  const canvas = L.canvas({ padding: 0.3 });
  const render = () => {
    layer.clearLayers();
    const b = state.map.getBounds();
    const zoom = Math.round(state.map.getZoom());
    const clusters = index.getClusters([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], zoom);
    for (const c of clusters) {
      const [lon, lat] = c.geometry.coordinates;
      if (c.properties.cluster) {
        const m = L.marker([lat, lon], { icon: clusterIcon(c.properties.point_count), keyboard: false });
        m.bindTooltip(`${c.properties.point_count.toLocaleString(lang)} ${t.venues}`);
        m.on("click", () => {
          const z = Math.min(index.getClusterExpansionZoom(c.properties.cluster_id), 18);
          state.map.setView([lat, lon], z);
        });
        m.addTo(layer);
      } else {
        const m = L.circleMarker([lat, lon], {
          renderer: canvas, radius: 5, color: "#0b3954", weight: 1, fillColor: "#2f78b5", fillOpacity: 0.9,
        });
        m.bindTooltip(`${c.properties.n} ${t.hotspots}`);
        m.addTo(layer);
      }
    }
    state.el.dataset.clusters = String(clusters.length);
  };
  state.map.on("moveend", render);
  render();
  state.el.dataset.points = String(body.count);
  state.index = index;
}

function fit(state, payload, base) {
  const map = state.map;
  if (base.focusBounds) {
    map.fitBounds(base.focusBounds, { padding: [16, 16] });
    return;
  }
  const pts = (payload?.points || []).map((p) => [p.lat, p.lon]);
  if (pts.length >= 2) map.fitBounds(window.L.latLngBounds(pts), { padding: [24, 24], maxZoom: 14 });
  else if (pts.length === 1) map.setView(pts[0], 14);
  else if (base.bounds) map.fitBounds(base.bounds, { padding: [8, 8] });
}

async function hydrateMap(tile) {
  const el = tile.querySelector(".tile-map");
  if (!el || typeof window.L === "undefined") return;
  const id = tile.dataset.tile;
  const kind = el.dataset.map;
  const payload = readJSON(tile, "[data-map-json]") || {};
  let state = maps.get(id);
  if (state && state.el === el) {
    // A refreshed tile kept its map element: only the data layer changes.
    if (kind === "points") drawPoints(state, payload);
    else if (kind === "areas") await drawAreas(state, payload);
    return;
  }
  const map = newMap(el);
  state = { map, el, kind, layer: null };
  maps.set(id, state);
  const base = await addBaseMap(map, { focus: payload.focus, lang, labels: kind !== "areas" });
  fit(state, payload, base); // a view first: clustering reads the map's bounds
  try {
    if (kind === "points") drawPoints(state, payload);
    else if (kind === "areas") await drawAreas(state, payload);
    else if (kind === "clusters") await drawClusters(state);
  } catch (err) {
    el.classList.add("map-error");
    console.warn("map", id, err);
  }
  const click = tile.dataset.clickTarget;
  if (click) map.on("click", (ev) => pickPoint(state, click, ev.latlng));
  el.dataset.ready = "1";
}

// --- nearest (map click -> a target tile with lat/lon) ------------------------------------------

function pickPoint(state, target, latlng) {
  const L = window.L;
  const params = new URLSearchParams(config.query || "");
  params.set("lat", latlng.lat.toFixed(5));
  params.set("lon", latlng.lng.toFixed(5));
  config.query = params.toString();
  if (state.pin) state.pin.remove();
  state.pin = L.circleMarker(latlng, { radius: 9, color: "#14181c", weight: 3, fill: false }).addTo(state.map);
  const url = new URL(window.location.href);
  url.search = config.query;
  window.history.replaceState(null, "", url);
  refreshTile(target, true);
}

// --- charts -------------------------------------------------------------------------------------

function chartWidth(el) {
  return Math.max(260, Math.floor(el.getBoundingClientRect().width));
}

function hydrateChart(tile) {
  const el = tile.querySelector("[data-chart]");
  const id = tile.dataset.tile;
  if (!el || typeof window.uPlot === "undefined") return;
  const payload = readJSON(tile, "[data-chart-json]");
  charts.get(id)?.destroy();
  charts.delete(id);
  // One point is no line: the table below the chart has it.
  if (!payload || payload.x.length < 2 || !payload.series.length) {
    el.hidden = true;
    return;
  }
  el.querySelector(".map-fallback")?.remove();
  const daily = payload.daily;
  const span = payload.x[payload.x.length - 1] - payload.x[0];
  const fmtX = (v) => (v == null ? "–" : daily ? hkt(new Date(v * 1000), lang).slice(0, 10) : hkt(new Date(v * 1000), lang));
  // Axis labels: months over long daily ranges, days over short ones, hours otherwise.
  const axisX = (v) => {
    const text = hkt(new Date(v * 1000), lang);
    if (!daily) return text.slice(11);
    return span > 200 * 86400 ? text.slice(0, 7) : text.slice(5, 10);
  };
  const opts = {
    width: chartWidth(el),
    height: 240,
    tzDate: hkDate,
    scales: { x: { time: true } },
    series: [
      { label: daily ? "" : "HKT", value: (_u, v) => fmtX(v) },
      ...payload.series.map((s) => ({
        label: s.label,
        stroke: s.colour,
        width: 2,
        dash: s.dash ? [6, 4] : undefined,
        spanGaps: false,
        points: { show: payload.x.length <= 48, size: 5 },
      })),
    ],
    axes: [
      { values: (_u, splits) => splits.map(axisX), space: daily ? 70 : 50 },
      { label: payload.y_title || "", size: 60 },
    ],
  };
  const data = [payload.x, ...payload.series.map((s) => s.values)];
  el.replaceChildren();
  const chart = new window.uPlot(opts, data, el);
  charts.set(id, chart);
  el.dataset.ready = "1";
}

if (typeof window.ResizeObserver === "function") {
  const ro = new ResizeObserver(() => {
    for (const [id, chart] of charts) {
      const el = document.querySelector(`#tile-${CSS.escape(id)} [data-chart]`);
      if (el) chart.setSize({ width: chartWidth(el), height: 240 });
    }
  });
  ro.observe(document.getElementById("dashboard-tiles") || document.body);
}

// --- tiles: hydrate, refresh, swap --------------------------------------------------------------

async function hydrate(tile) {
  updateFreshness(tile);
  if (tile.dataset.selfUpdating !== undefined) return;
  try {
    await hydrateMap(tile);
  } catch (_err) {
    tile.querySelector(".tile-map")?.classList.add("map-error");
  }
  hydrateChart(tile);
}

function swap(old, html) {
  const holder = document.createElement("div");
  holder.innerHTML = html.trim();
  const fresh = holder.firstElementChild;
  if (!fresh) return null;
  // Keep the live map element (and its Leaflet state) and the open/closed tables.
  const oldMap = old.querySelector(".tile-map");
  const newMap = fresh.querySelector(".tile-map");
  if (oldMap && newMap && oldMap.dataset.ready) newMap.replaceWith(oldMap);
  const oldDetails = old.querySelectorAll("details");
  fresh.querySelectorAll("details").forEach((d, i) => {
    if (oldDetails[i]) d.open = oldDetails[i].open;
  });
  fresh.dataset.refreshes = String(Number(old.dataset.refreshes || 0) + 1);
  old.replaceWith(fresh);
  return fresh;
}

async function refreshTile(id, urgent = false) {
  const tile = document.getElementById(`tile-${id}`);
  if (!tile) return;
  const query = config.query ? `?${config.query}` : "";
  const url = `${config.fragment}${encodeURIComponent(id)}${query}`;
  try {
    const res = await fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (res.status === 503) {
      setTimeout(() => refreshTile(id), 2000);
      return;
    }
    if (!res.ok) return;
    const fresh = swap(tile, await res.text());
    if (fresh) await hydrate(fresh);
  } catch (_err) {
    if (urgent) tile.classList.add("refresh-error");
  }
}

function scheduleRefresh(id) {
  clearTimeout(timers.get(id));
  timers.set(id, setTimeout(() => refreshTile(id), 400));
}

function tilesFor(topic, data) {
  const out = [];
  for (const [id, tile] of Object.entries(config.tiles || {})) {
    if (tile.self) continue;
    const base = topic.split(".")[0];
    if ((data.feed_id && tile.feeds.includes(data.feed_id)) || tile.topics.includes(base)) out.push(id);
  }
  return out;
}

function setLive(state) {
  const el = document.getElementById("dashboard-live");
  if (!el) return;
  el.hidden = el.dataset.quiet !== undefined; // a tile shows its own live state
  el.dataset.state = state;
  const text = el.querySelector(".text");
  if (text) text.textContent = t[state] || state;
}

async function main() {
  const tiles = [...document.querySelectorAll(".tile[data-tile]")];
  for (const tile of tiles) {
    if (tile.dataset.deferred) refreshTile(tile.dataset.tile);
    else hydrate(tile);
  }
  setInterval(updateAllFreshness, 30_000);
  setInterval(() => {
    for (const id of Object.keys(config.tiles || {})) if (!config.tiles[id].self) scheduleRefresh(id);
  }, REFRESH_MS);
  if ((config.topics || []).length) {
    subscribe(
      config.topics,
      (topic, data) => tilesFor(topic, data).forEach(scheduleRefresh),
      (state, reconnected) => {
        setLive(state);
        if (reconnected) {
          for (const id of Object.keys(config.tiles || {})) if (!config.tiles[id].self) scheduleRefresh(id);
        }
      },
    );
  }
}

// Leaflet and uPlot are classic deferred scripts: they have run before this module.
main();
