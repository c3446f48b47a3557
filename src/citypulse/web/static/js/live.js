// Live updates over Server-Sent Events (/api/v1/stream). EventSource reconnects by itself;
// this wrapper reports the connection state and tells the page when it (re)connected, so the
// page can refetch what it may have missed while offline.

/**
 * @param {string[]} topics  bus topics, e.g. ["traffic"]
 * @param {(topic: string, data: object) => void} onMessage
 * @param {(state: "connecting"|"live"|"reconnecting", reconnected: boolean) => void} [onState]
 * @returns {() => void} close
 */
export function subscribe(topics, onMessage, onState) {
  if (typeof window.EventSource !== "function") return () => {};
  const url = "/api/v1/stream?topics=" + encodeURIComponent(topics.join(","));
  const source = new EventSource(url);
  let wasLive = false;
  let dropped = false;
  const state = (s, reconnected = false) => onState && onState(s, reconnected);
  state("connecting");
  source.addEventListener("open", () => {
    state("live", wasLive && dropped);
    wasLive = true;
    dropped = false;
  });
  source.addEventListener("error", () => {
    dropped = true;
    state("reconnecting");
  });
  for (const topic of topics) {
    source.addEventListener(topic, (ev) => {
      let data = {};
      try {
        data = JSON.parse(ev.data);
      } catch (_err) {
        return;
      }
      onMessage(topic, data);
    });
  }
  const close = () => source.close();
  window.addEventListener("pagehide", close, { once: true });
  return close;
}
