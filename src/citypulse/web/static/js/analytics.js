// Traffic analytics panel: draws the hourly congestion pattern (uPlot) and swaps the link
// forecast in place when another link is chosen. The server-rendered panel works without it.

import { subscribe } from "./live.js";
import { hkt } from "./timefmt.js";

const panel = document.getElementById("analytics-panel");
const t = JSON.parse(document.getElementById("analytics-strings")?.textContent || "{}");
const lang = t.lang || document.documentElement.lang || "en";

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${res.status} ${url}`);
  return res.json();
}

// --- hourly pattern chart ------------------------------------------------------------------

async function drawPattern() {
  const box = document.getElementById("an-pattern-chart");
  const status = document.getElementById("an-pattern-status");
  if (!box || typeof window.uPlot !== "function") return;
  status.textContent = t.loading || "";
  let data;
  try {
    data = await getJSON(box.dataset.src);
  } catch (_err) {
    status.textContent = t.loadError || "";
    return;
  }
  const city = (data.hourly || [])[0];
  if (!city) {
    status.textContent = t.noData || "";
    return;
  }
  const pct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);
  const hours = Array.from({ length: 24 }, (_v, i) => i);
  const width = Math.max(280, box.clientWidth || 600);
  box.textContent = "";
  // eslint-disable-next-line no-new
  new window.uPlot(
    {
      width,
      height: 220,
      scales: { x: { time: false }, y: { range: [0, 100] } },
      axes: [
        { label: t.hour, values: (_u, vals) => vals.map((v) => `${String(v).padStart(2, "0")}:00`) },
        { label: t.index },
      ],
      series: [
        {},
        { label: t.weekday, stroke: "#c4221f", width: 2 },
        { label: t.weekend, stroke: "#0a4f8f", width: 2, dash: [6, 4] },
      ],
    },
    [hours, city.weekday.map(pct), city.weekend.map(pct)],
    box,
  );
  status.textContent = "";
}

// --- forecast --------------------------------------------------------------------------------

function renderForecast(fc) {
  const body = document.getElementById("an-forecast-body");
  if (!body) return;
  body.textContent = "";
  if (fc.status !== "ok") {
    const p = el("p", { class: "an-nofc", "data-status": fc.status });
    p.append(el("strong", {}, fc.status === "insufficient-history" ? t.insufficient : t.noRecent));
    if (!lang.startsWith("zh")) p.append(" " + (fc.detail || "")); // details are English
    body.append(p);
    return;
  }
  const table = el("table", { class: "data-table analytics-table", id: "an-forecast-table" });
  const last = fc.last_observed_kmh === null ? "–" : Math.round(fc.last_observed_kmh);
  table.append(
    el("caption", {}, `${t.lastReading}: ${last} km/h (${hkt(fc.last_observed_at, lang).slice(11)} HKT)`),
  );
  const head = el("tr");
  head.append(el("th", { scope: "col" }, t.in), el("th", { scope: "col" }, t.forHkt));
  head.append(el("th", { scope: "col", class: "num" }, t.speed));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const tbody = el("tbody");
  for (const p of fc.points) {
    const tr = el("tr");
    tr.append(el("th", { scope: "row" }, `${p.horizon_min} ${t.min}`));
    tr.append(el("td", {}, hkt(p.target, lang).slice(11)));
    tr.append(el("td", { class: "num" }, String(Math.round(p.speed_kmh))));
    tbody.append(tr);
  }
  table.append(tbody);
  body.append(table);
}

async function loadForecast(id) {
  if (!id) return;
  try {
    renderForecast(await getJSON("/api/v1/analytics/forecast?entity_id=" + encodeURIComponent(id)));
    const url = new URL(window.location.href);
    url.searchParams.set("link", id);
    window.history.replaceState(null, "", url);
  } catch (_err) {
    const body = document.getElementById("an-forecast-body");
    if (body) body.textContent = t.loadError || "";
  }
}

function wireForecast() {
  const form = document.getElementById("an-forecast-form");
  const select = document.getElementById("an-link");
  if (!form || !select) return;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadForecast(select.value);
  });
  select.addEventListener("change", () => loadForecast(select.value));
  subscribe(["analytics"], () => loadForecast(select.value));
}

if (panel) {
  wireForecast();
  if (document.readyState === "complete") drawPattern();
  else window.addEventListener("load", drawPattern, { once: true });
}
