// /dashboards/traffic, "links" tile: draws the road links (Leaflet, our own GeoJSON over the
// offline district base map, no tiles), a uPlot chart of one link, and keeps map, table, figures
// and "last updated" current from the SSE stream. The server-rendered table works without any of
// this.

import { addBaseMap } from "./basemap.js";
import { subscribe } from "./live.js";
import { ageText, hkDate, hkt } from "./timefmt.js";

const LEVELS = ["good", "average", "bad"];
// Colour is never the only cue: average links are dashed, congested links thicker.
const STYLE = {
  good: { color: "#16803c", weight: 3, dashArray: null },
  average: { color: "#b35c00", weight: 3.5, dashArray: "7 5" },
  bad: { color: "#c4221f", weight: 5, dashArray: null },
  none: { color: "#6b7280", weight: 2, dashArray: "2 5" },
};
const OFFSET_PX = 2.5; // opposite directions share nodes: draw each on its own side (drive left)
const CHART_BUCKET = "2m";

const mapEl = document.getElementById("traffic-map");
const fresh = document.getElementById("traffic-freshness");
const t = JSON.parse(document.getElementById("traffic-strings")?.textContent || "{}");
const lang = t.lang || document.documentElement.lang || "en";
const feeds = (fresh?.dataset.feeds || "").split(",").filter(Boolean);

const links = new Map(); // id -> {props, base: [[lat, lon], [lat, lon]], line}
const rows = new Map(); // id -> <tr>
let map = null;
let selectedId = document.getElementById("link-select")?.dataset.selected || null;
let updated = fresh?.dataset.updated || null;
let chart = null;
let xRange = [0, 1];

for (const tr of document.querySelectorAll("#traffic-table tbody tr[data-id]")) {
  rows.set(tr.dataset.id, tr);
}

function levelOf(props) {
  return LEVELS.includes(props.saturation) ? props.saturation : "none";
}

function styleFor(props, selected) {
  const s = STYLE[levelOf(props)];
  return {
    color: s.color,
    weight: selected ? s.weight + 3 : s.weight,
    dashArray: s.dashArray,
    opacity: 0.95,
    lineCap: "round",
  };
}

function satText(level) {
  return level === "none" ? t.nodata : t[level];
}

function tooltipText(id) {
  const p = links.get(id)?.props || {};
  const name = (lang.startsWith("zh") ? p.name_zh || p.name_en : p.name_en || p.name_zh) || id;
  const speed = p.speed_kmh == null ? "–" : `${Math.round(p.speed_kmh)} ${t.kmh}`;
  return `${name}: ${speed}, ${satText(levelOf(p))}`;
}

async function fetchJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

// --- map ------------------------------------------------------------------------------------

function offsetLatLngs(base) {
  const a = map.latLngToLayerPoint(base[0]);
  const b = map.latLngToLayerPoint(base[1]);
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy);
  if (len < 1) return base;
  // Left of the direction of travel, in screen coordinates (y grows downwards).
  const nx = (dy / len) * OFFSET_PX;
  const ny = (-dx / len) * OFFSET_PX;
  return [
    map.layerPointToLatLng(window.L.point(a.x + nx, a.y + ny)),
    map.layerPointToLatLng(window.L.point(b.x + nx, b.y + ny)),
  ];
}

function placeLines() {
  for (const link of links.values()) {
    if (link.line) link.line.setLatLngs(offsetLatLngs(link.base));
  }
}

function addLegend() {
  const legend = window.L.control({ position: "topright" });
  legend.onAdd = () => {
    const box = window.L.DomUtil.create("div", "map-legend");
    const title = window.L.DomUtil.create("p", "map-legend-title", box);
    title.textContent = t.legend;
    for (const level of [...LEVELS, "none"]) {
      const item = window.L.DomUtil.create("p", "map-legend-item", box);
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("width", "34");
      svg.setAttribute("height", "10");
      svg.setAttribute("aria-hidden", "true");
      const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
      const s = STYLE[level];
      line.setAttribute("x1", "2");
      line.setAttribute("y1", "5");
      line.setAttribute("x2", "32");
      line.setAttribute("y2", "5");
      line.setAttribute("stroke", s.color);
      line.setAttribute("stroke-width", String(s.weight));
      line.setAttribute("stroke-linecap", "round");
      if (s.dashArray) line.setAttribute("stroke-dasharray", s.dashArray);
      svg.appendChild(line);
      item.appendChild(svg);
      item.appendChild(document.createTextNode(" " + satText(level)));
    }
    return box;
  };
  legend.addTo(map);
}

function drawMap(collection) {
  if (!mapEl || typeof window.L === "undefined") return;
  const L = window.L;
  mapEl.querySelector(".map-fallback")?.remove();
  map = L.map(mapEl, {
    attributionControl: false,
    zoomSnap: 0.25,
    renderer: L.svg({ padding: 0.5 }),
    minZoom: 9,
    maxZoom: 18,
  });
  // District boundaries and coastline shipped with the app: orientation without a tile server.
  addBaseMap(map, { lang, labels: true });
  const bounds = L.latLngBounds([]);
  for (const f of collection.features) {
    const base = f.geometry.coordinates.map(([lon, lat]) => L.latLng(lat, lon));
    base.forEach((ll) => bounds.extend(ll));
    links.set(f.id, { props: f.properties, base, line: null });
  }
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [12, 12] });
  else map.setView([22.33, 114.15], 11);
  for (const [id, link] of links) {
    const line = L.polyline(link.base, styleFor(link.props, id === selectedId));
    line.bindTooltip(() => document.createTextNode(tooltipText(id)), { sticky: true });  // text, never HTML
    line.on("click", () => selectLink(id, true));
    line.addTo(map);
    const el = line.getElement();
    if (el) {
      el.dataset.id = id;
      el.dataset.level = levelOf(link.props);
    }
    link.line = line;
  }
  placeLines();
  map.on("zoomend", placeLines);
  addLegend();
  links.get(selectedId)?.line?.bringToFront();
  mapEl.dataset.links = String(links.size);
}

function restyle(id) {
  const link = links.get(id);
  if (!link?.line) return;
  link.line.setStyle(styleFor(link.props, id === selectedId));
  const el = link.line.getElement();
  if (el) el.dataset.level = levelOf(link.props);
}

// --- table, figures, freshness --------------------------------------------------------------

function updateRow(id, props) {
  const tr = rows.get(id);
  if (!tr) return;
  const speed = tr.querySelector('[data-col="speed"]');
  if (speed) speed.textContent = props.speed_kmh == null ? "–" : String(Math.round(props.speed_kmh));
  const sat = tr.querySelector('[data-col="saturation"]');
  if (sat) {
    const level = levelOf(props);
    const span = document.createElement("span");
    span.className = level === "none" ? "muted" : `sat sat-${level}`;
    span.textContent = satText(level);
    sat.replaceChildren(span);
  }
  const ts = tr.querySelector('[data-col="ts"] time');
  if (ts) {
    const text = hkt(props.ts, lang);
    ts.dateTime = props.ts || "";
    // Same date as the newest observation: the time alone, as the server renders it.
    ts.textContent = updated && text.startsWith(hkt(updated, lang).slice(0, 10)) ? text.slice(11) : text;
  }
}

function updateFigures() {
  const counts = { good: 0, average: 0, bad: 0 };
  let n = 0;
  let sum = 0;
  for (const { props } of links.values()) {
    if (props.saturation in counts) counts[props.saturation] += 1;
    if (props.speed_kmh != null) {
      n += 1;
      sum += props.speed_kmh;
    }
  }
  const set = (id, v) => {
    const el = document.getElementById(id);
    if (el) el.textContent = String(v);
  };
  set("stat-links", n);
  set("stat-mean", n ? Math.round(sum / n) : "–");
  for (const level of LEVELS) set(`stat-${level}`, counts[level]);
}

function updateFreshness() {
  if (!fresh) return;
  const timeEl = document.getElementById("traffic-updated");
  const badge = document.getElementById("traffic-stale");
  const age = document.getElementById("traffic-age");
  if (!updated) return;
  if (timeEl && timeEl.dateTime !== updated) {
    timeEl.dateTime = updated;
    timeEl.textContent = hkt(updated, lang);
  }
  const seconds = (Date.now() - new Date(updated).getTime()) / 1000;
  const stale = seconds > Number(fresh.dataset.staleAfter || 600);
  fresh.classList.toggle("is-stale", stale);
  if (badge) badge.hidden = !stale;
  if (age) age.textContent = `(${ageText(seconds, t)})`;
}

function applyCollection(collection) {
  if (collection.updated) updated = collection.updated;
  for (const f of collection.features) {
    const link = links.get(f.id);
    if (link) link.props = f.properties;
    else links.set(f.id, { props: f.properties, base: [], line: null });
    restyle(f.id);
    updateRow(f.id, f.properties);
  }
  links.get(selectedId)?.line?.bringToFront();
  updateFigures();
  updateFreshness();
  if (mapEl) mapEl.dataset.refreshes = String(Number(mapEl.dataset.refreshes || 0) + 1);
}

// --- chart ----------------------------------------------------------------------------------

const chartEl = document.getElementById("traffic-chart");
const chartStatus = document.getElementById("chart-status");

function chartWidth() {
  return Math.max(260, Math.floor(chartEl.getBoundingClientRect().width));
}

async function loadChart() {
  if (!chartEl || !selectedId || typeof window.uPlot === "undefined") return;
  const hours = Number(chartEl.dataset.hours || 3);
  const end = new Date((updated ? new Date(updated).getTime() : Date.now()) + 60_000);
  const start = new Date(end.getTime() - hours * 3600_000);
  const params = new URLSearchParams({
    entity_id: selectedId,
    metric: chartEl.dataset.metric || "speed_kmh",
    start: start.toISOString(),
    end: end.toISOString(),
    bucket: CHART_BUCKET,
  });
  if (chartStatus && !chart) chartStatus.textContent = t.loading;
  let body;
  try {
    body = await fetchJSON("/api/v1/series?" + params);
  } catch (_err) {
    if (chartStatus) chartStatus.textContent = t.loadError;
    return;
  }
  const xs = body.points.map((p) => new Date(p.ts).getTime() / 1000);
  const ys = body.points.map((p) => p.avg);
  const data = [xs, ys];
  const name = document.querySelector(`#link-select option[value="${CSS.escape(selectedId)}"]`);
  if (chartStatus) {
    chartStatus.textContent = xs.length ? `${name ? name.textContent : selectedId}` : t.noSeries;
  }
  xRange = [start.getTime() / 1000, end.getTime() / 1000];
  if (chart) {
    chart.setData(data);
    return;
  }
  chart = new window.uPlot(
    {
      width: chartWidth(),
      height: 260,
      tzDate: hkDate,
      scales: {
        x: { time: true, range: () => xRange },
        y: { range: (_u, _min, max) => [0, Math.max(60, Math.ceil(((max || 0) + 10) / 20) * 20)] },
      },
      series: [
        { label: "HKT", value: (_u, v) => (v == null ? "–" : hkt(new Date(v * 1000), lang)) },
        {
          label: t.speed,
          stroke: "#0b5394",
          width: 2,
          fill: "rgba(11, 83, 148, 0.08)",
          spanGaps: true,
          points: { show: true, size: 6 },
        },
      ],
      axes: [
        { values: (_u, splits) => splits.map((v) => hkt(new Date(v * 1000), lang).slice(11)) },
        { label: t.speed },
      ],
    },
    data,
    chartEl,
  );
}

if (chartEl && typeof window.ResizeObserver === "function") {
  new ResizeObserver(() => chart && chart.setSize({ width: chartWidth(), height: 260 })).observe(
    chartEl,
  );
}

function selectLink(id, fromMap) {
  if (!id || id === selectedId) return;
  const previous = selectedId;
  selectedId = id;
  restyle(previous);
  restyle(id);
  links.get(id)?.line?.bringToFront();
  const select = document.getElementById("link-select");
  if (select && fromMap) select.value = id;
  if (chart) {
    chart.destroy();
    chart = null;
  }
  loadChart();
}

// --- filter ---------------------------------------------------------------------------------

function setupFilter() {
  const input = document.getElementById("link-filter");
  const count = document.getElementById("filter-count");
  if (!input) return;
  input.disabled = false;
  input.addEventListener("input", () => {
    const q = input.value.trim().toLowerCase();
    let shown = 0;
    for (const tr of rows.values()) {
      const match = !q || tr.textContent.toLowerCase().includes(q);
      tr.hidden = !match;
      if (match) shown += 1;
    }
    if (count) {
      count.textContent = q
        ? t.shown.replace("%(n)s", String(shown)).replace("%(total)s", String(rows.size))
        : "";
    }
  });
}

// --- live -----------------------------------------------------------------------------------

let refreshTimer = null;
let refreshing = false;

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 300);
}

async function refresh() {
  if (refreshing) {
    scheduleRefresh();
    return;
  }
  refreshing = true;
  try {
    applyCollection(await fetchJSON(mapEl?.dataset.geojson || "/api/v1/traffic/links.geojson"));
    await loadChart();
  } catch (_err) {
    // The next message or reconnection retries.
  } finally {
    refreshing = false;
  }
}

function setLive(state) {
  const el = document.getElementById("traffic-live");
  if (!el) return;
  el.hidden = false;
  el.dataset.state = state;
  const text = el.querySelector(".text");
  if (text) text.textContent = t[state] || state;
}

function fillSelect() {
  const select = document.getElementById("link-select");
  if (!select) return;
  const wanted = select.dataset.selected || selectedId;
  const groups = new Map();
  for (const [id, { props }] of links) {
    const region = props.region || "";
    if (!groups.has(region)) groups.set(region, []);
    const name = (lang.startsWith("zh") ? props.name_zh || props.name_en : props.name_en || props.name_zh) || id;
    groups.get(region).push([id, name]);
  }
  const frag = document.createDocumentFragment();
  for (const region of [...groups.keys()].sort()) {
    const group = document.createElement("optgroup");
    group.label = (t.regions && t.regions[region]) || region || "?";
    for (const [id, name] of groups.get(region).sort((a, b) => a[0].localeCompare(b[0]))) {
      group.appendChild(new Option(name, id, false, id === wanted));
    }
    frag.appendChild(group);
  }
  select.replaceChildren(frag);
  if (!select.value && select.options.length) select.selectedIndex = 0;
  selectedId = select.value || null;
  const panel = document.getElementById("chart-panel");
  if (panel && typeof window.uPlot !== "undefined") panel.hidden = false;
}

async function main() {
  setupFilter();
  updateFreshness();
  setInterval(updateFreshness, 30_000);
  document.getElementById("link-select")?.addEventListener("change", (ev) => {
    selectLink(ev.target.value, false);
  });
  try {
    const collection = await fetchJSON(mapEl?.dataset.geojson || "/api/v1/traffic/links.geojson");
    for (const f of collection.features) links.set(f.id, { props: f.properties, base: [], line: null });
    fillSelect();
    drawMap(collection);
    applyCollection(collection);
  } catch (_err) {
    mapEl?.classList.add("map-error");
  }
  loadChart();
  subscribe(
    ["traffic"],
    (_topic, data) => {
      if (!data.feed_id || feeds.length === 0 || feeds.includes(data.feed_id)) scheduleRefresh();
    },
    (state, reconnected) => {
      setLive(state);
      if (reconnected) scheduleRefresh();
    },
  );
}

main();
