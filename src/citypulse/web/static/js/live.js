// Live updates over Server-Sent Events (/api/v1/stream), one connection per page.
//
// Several scripts on a page subscribe (the warning banner on every page, a dashboard, the
// traffic map); they share ONE EventSource for the union of their topics. The page declares its
// topics up front in <meta name="citypulse-live-topics">, so late subscribers do not force a
// reconnect. EventSource reconnects by itself; subscribers hear the connection state and whether
// it came back after a drop, so they can refetch what they may have missed.

const listeners = new Map(); // topic -> Set<(topic, data) => void>
const stateListeners = new Set();
let source = null;
let connectedTopics = "";
let current = "off";
let wasLive = false;
let dropped = false;
let pending = false;

function declaredTopics() {
  const meta = document.querySelector('meta[name="citypulse-live-topics"]');
  return (meta?.content || "").split(",").map((t) => t.trim()).filter(Boolean);
}

function wantedTopics() {
  return [...new Set([...declaredTopics(), ...listeners.keys()])].sort();
}

function setState(state, reconnected = false) {
  current = state;
  for (const fn of stateListeners) fn(state, reconnected);
}

function dispatch(topic, ev) {
  let data = {};
  try {
    data = JSON.parse(ev.data);
  } catch (_err) {
    return;
  }
  for (const fn of listeners.get(topic) || []) fn(topic, data);
}

function connect() {
  pending = false;
  const topics = wantedTopics();
  const key = topics.join(",");
  if (source && key === connectedTopics) return;
  if (source) source.close();
  connectedTopics = key;
  source = new EventSource("/api/v1/stream?topics=" + encodeURIComponent(key));
  setState("connecting");
  source.addEventListener("open", () => {
    setState("live", wasLive && dropped);
    wasLive = true;
    dropped = false;
  });
  source.addEventListener("error", () => {
    dropped = true;
    setState("reconnecting");
  });
  // Named events: "event: <topic>". Every feed publishes each message on all its topics, so
  // listening to the base topics is enough (sub-topics such as traffic.news would repeat it).
  for (const t of topics) source.addEventListener(t, (ev) => dispatch(t, ev));
}

function schedule() {
  if (pending || typeof window.EventSource !== "function") return;
  pending = true;
  // Subscriptions made while the page starts share one connection.
  setTimeout(connect, 0);
}

window.addEventListener("pagehide", () => source && source.close(), { once: true });

/**
 * @param {string[]} topics  bus topics, e.g. ["traffic"]
 * @param {(topic: string, data: object) => void} onMessage
 * @param {(state: "connecting"|"live"|"reconnecting", reconnected: boolean) => void} [onState]
 * @returns {() => void} unsubscribe
 */
export function subscribe(topics, onMessage, onState) {
  if (typeof window.EventSource !== "function") return () => {};
  for (const t of topics) {
    if (!listeners.has(t)) listeners.set(t, new Set());
    listeners.get(t).add(onMessage);
  }
  if (onState) {
    stateListeners.add(onState);
    if (current !== "off") setTimeout(() => onState(current, false), 0);
  }
  const known = connectedTopics.split(",");
  if (!source || topics.some((t) => !known.includes(t))) schedule();
  return () => {
    for (const t of topics) listeners.get(t)?.delete(onMessage);
    if (onState) stateListeners.delete(onState);
  };
}
