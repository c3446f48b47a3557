// Live alert banner (and "alerts changed" notice on /alerts): refetch open alerts whenever the
// bus topic "alerts" says something changed, and after a reconnect (changes may have been missed).
import { subscribe } from "/static/js/live.js";

const RANK = { info: 0, low: 1, moderate: 2, high: 3, severe: 4 };
const banner = document.getElementById("alert-banner");

function text(tag, content, cls) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  el.textContent = content;
  return el;
}

async function refresh() {
  if (!banner) return;
  const min = banner.dataset.minSeverity || "high";
  let alerts;
  try {
    const res = await fetch("/api/v1/alerts?state=open&severity=" + encodeURIComponent(min));
    if (!res.ok) return;
    alerts = await res.json();
  } catch (_err) {
    return;
  }
  const zh = (banner.dataset.lang || "en").startsWith("zh");
  let names = {};
  try {
    names = JSON.parse(banner.dataset.severityNames || "{}");
  } catch (_err) {
    names = {};
  }
  alerts.sort((a, b) => (RANK[b.severity] || 0) - (RANK[a.severity] || 0));
  const inner = document.createElement("div");
  inner.className = "alert-banner-inner";
  inner.setAttribute("role", "status");
  inner.setAttribute("aria-live", "polite");
  if (alerts.length) {
    inner.append(text("strong", banner.dataset.labelTitle || "Active alerts"));
    const list = document.createElement("ul");
    for (const a of alerts.slice(0, 5)) {
      const li = document.createElement("li");
      li.className = "sev-line sev-line-" + a.severity;
      li.append(text("span", names[a.severity] || a.severity, "sev sev-" + a.severity));
      li.append(" " + ((zh ? a.title_zh || a.title_en : a.title_en || a.title_zh) || ""));
      list.append(li);
    }
    inner.append(list);
    const more = text("a", banner.dataset.labelMore || "All alerts");
    more.href = banner.dataset.listUrl || "/alerts";
    inner.append(more);
  }
  banner.replaceChildren(inner);
  banner.hidden = alerts.length === 0;
}

function changed() {
  const notice = document.getElementById("alerts-changed");
  if (notice) notice.hidden = false;
  refresh();
}

subscribe(["alerts"], (_topic, data) => {
  if (data && data.type === "alert") changed();
}, (state, reconnected) => {
  if (reconnected) changed();
});
