// Times on citypulse pages are shown in Hong Kong time whatever the browser's zone.

const HK_TZ = "Asia/Hong_Kong";
const cache = new Map();

function formatter(lang) {
  if (!cache.has(lang)) {
    cache.set(
      lang,
      new Intl.DateTimeFormat("en-CA", {
        timeZone: HK_TZ, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23",
      }),
    );
  }
  return cache.get(lang);
}

/** "2016-10-14 18:52" (HKT) from an ISO string or Date; "" for nothing. */
export function hkt(value, lang = "en") {
  if (!value) return "";
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return "";
  const parts = Object.fromEntries(formatter(lang).formatToParts(d).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** "%(n)s min ago"-style age text using the page's translated templates. */
export function ageText(seconds, t) {
  const fill = (tpl, n) => tpl.replace("%(n)s", String(n));
  if (seconds < 60 * 90) return fill(t.agoMin, Math.max(0, Math.round(seconds / 60)));
  if (seconds < 86400 * 2) return fill(t.agoH, Math.round(seconds / 3600));
  return fill(t.agoD, Math.round(seconds / 86400).toLocaleString(t.lang || "en"));
}

/** For uPlot: a Date whose local fields show Hong Kong wall time. */
export function hkDate(seconds) {
  return window.uPlot.tzDate(new Date(seconds * 1000), HK_TZ);
}
