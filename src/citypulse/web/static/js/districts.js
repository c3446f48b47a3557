// /districts: the 18 districts on the offline base map, each a link to its page (the list beside
// the map holds the same links for keyboard and screen reader users).

import { addBaseMap, districtsGeo, newMap } from "./basemap.js";

const el = document.querySelector('[data-map="districts"]');
const config = JSON.parse(document.getElementById("districts-config")?.textContent || "{}");
const lang = document.documentElement.lang || "en";

async function main() {
  if (!el || typeof window.L === "undefined") return;
  const L = window.L;
  const map = newMap(el);
  const base = await addBaseMap(map, { lang, labels: true });
  const geo = await districtsGeo();
  const regionColour = { hk_island: "#d9e8f5", kowloon: "#f6e3c8", new_territories: "#dcefd9" };
  L.geoJSON(
    { type: "FeatureCollection", features: geo.features.filter((f) => f.properties.kind === "district") },
    {
      style: (f) => ({ color: "#4b5b6b", weight: 1, fillColor: regionColour[f.properties.region] || "#eee", fillOpacity: 0.9 }),
      onEachFeature: (f, layer) => {
        const name = lang.startsWith("zh") ? f.properties.name_zh : f.properties.name_en;
        layer.bindTooltip(() => document.createTextNode(String(name ?? "")));
        layer.on("click", () => window.location.assign(`${config.links || "/districts/"}${f.properties.id}`));
        layer.on("mouseover", () => layer.setStyle({ weight: 3 }));
        layer.on("mouseout", () => layer.setStyle({ weight: 1 }));
      },
    },
  ).addTo(map);
  if (base.bounds) map.fitBounds(base.bounds, { padding: [8, 8] });
  el.dataset.ready = "1";
}

main();
