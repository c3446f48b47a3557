// The weather warning banner on every page: refreshed from /fragments/warnings when the SSE topic
// "warnings" announces a change (and after a reconnection, which may have missed one). The
// server-rendered banner works without this script.

import { subscribe } from "./live.js";

const region = document.getElementById("weather-warnings");
let timer = null;

async function refresh() {
  if (!region) return;
  const url = region.dataset.fragment || "/fragments/warnings";
  try {
    const res = await fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!res.ok) return;
    const html = (await res.text()).trim();
    region.innerHTML = html;
    region.dataset.count = String(region.querySelectorAll(".warning").length);
    region.dataset.refreshes = String(Number(region.dataset.refreshes || 0) + 1);
  } catch (_err) {
    // The next message or reconnection retries.
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 150);
}

if (region) {
  // Whole pages may be served from a cache: check the banner once, then follow the stream.
  refresh();
  subscribe(["warnings"], schedule, (state, reconnected) => {
    if (reconnected) schedule();
  });
}
