// The offline base map: Hong Kong's coastline and 18 district boundaries, from a GeoJSON file the
// app serves itself (/static/geo/hk-districts.json, generated from Natural Earth by
// scripts/build_districts.py). No tile server is contacted, so every map works offline.

const GEO_URL = "/static/geo/hk-districts.json";
let geoPromise = null;

/** The district boundaries and outline (fetched once per page). */
export function districtsGeo() {
  if (!geoPromise) {
    geoPromise = fetch(GEO_URL).then((res) => {
      if (!res.ok) throw new Error(`${GEO_URL}: HTTP ${res.status}`);
      return res.json();
    });
  }
  return geoPromise;
}

const HK_CENTRE = [22.35, 114.12];

function pane(map, name, z) {
  if (!map.getPane(name)) {
    const p = map.createPane(name);
    p.style.zIndex = String(z);
    p.style.pointerEvents = "none";
  }
  return name;
}

/**
 * Draw the base layer under a Leaflet map's data.
 * @param {L.Map} map
 * @param {{focus?: string|null, lang?: string, labels?: boolean}} [opts]
 * @returns {Promise<{bounds: L.LatLngBounds|null, focusBounds: L.LatLngBounds|null}>}
 */
export async function addBaseMap(map, opts = {}) {
  const L = window.L;
  const lang = opts.lang || document.documentElement.lang || "en";
  const zh = lang.startsWith("zh");
  let geo;
  try {
    geo = await districtsGeo();
  } catch (_err) {
    map.setView(HK_CENTRE, 10);
    return { bounds: null, focusBounds: null };
  }
  const basePane = pane(map, "basemap", 250);
  const labelPane = pane(map, "baselabels", 350);
  const renderer = L.svg({ pane: basePane, padding: 0.5 });
  const districts = geo.features.filter((f) => f.properties.kind === "district");
  const outline = geo.features.find((f) => f.properties.kind === "outline");
  const land = L.geoJSON(
    { type: "FeatureCollection", features: districts },
    {
      pane: basePane,
      renderer,
      interactive: false,
      style: (f) => ({
        color: f.properties.id === opts.focus ? "#1f2d3a" : "#8a97a5",
        weight: f.properties.id === opts.focus ? 2.5 : 0.8,
        fillColor: f.properties.id === opts.focus ? "#fffbea" : "#f5f2ea",
        fillOpacity: 1,
        dashArray: f.properties.id === opts.focus ? null : "3 3",
      }),
    },
  ).addTo(map);
  if (outline) {
    L.geoJSON(outline, {
      pane: basePane,
      renderer,
      interactive: false,
      style: { color: "#4b5b6b", weight: 1.2, fill: false },
    }).addTo(map);
  }
  let focusBounds = null;
  const labels = [];
  for (const f of districts) {
    const p = f.properties;
    if (p.id === opts.focus) focusBounds = L.geoJSON(f).getBounds();
    if (opts.labels === false || !p.label) continue;
    const span = document.createElement("span");
    span.textContent = zh ? p.name_zh : p.name_en;
    const icon = L.divIcon({ className: "district-label", html: span, iconSize: null });
    labels.push(
      L.marker([p.label[1], p.label[0]], {
        icon, interactive: false, keyboard: false, pane: labelPane,
      }),
    );
  }
  const labelLayer = L.layerGroup(labels);
  const toggleLabels = () => {
    if (map.getZoom() >= 10.5) labelLayer.addTo(map);
    else labelLayer.remove();
  };
  map.on("zoomend", toggleLabels);
  toggleLabels();
  addCredit(map, zh);
  return { bounds: land.getBounds(), focusBounds };
}

function addCredit(map, zh) {
  const L = window.L;
  const credit = L.control({ position: "bottomright" });
  credit.onAdd = () => {
    const box = L.DomUtil.create("div", "map-credit");
    box.textContent = zh
      ? "地區界線：Natural Earth（簡化，只供參考）"
      : "Boundaries: Natural Earth (simplified, for orientation)";
    return box;
  };
  credit.addTo(map);
}

/** A Leaflet map on ``el`` with our defaults (no tiles, no attribution bar, HK limits). */
export function newMap(el, extra = {}) {
  const L = window.L;
  el.querySelector(".map-fallback")?.remove();
  return L.map(el, {
    attributionControl: false,
    zoomSnap: 0.25,
    minZoom: 9,
    maxZoom: 18,
    maxBounds: L.latLngBounds([21.9, 113.5], [22.8, 114.7]),
    ...extra,
  });
}
